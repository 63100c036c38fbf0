"""The archived-folder format: what an archived folder holds and what lies beside its data.

Written by the archive stage, read by restore, purge, catalog rebuild and finalize; every one
of them goes through these modules, so the writer and the readers cannot drift apart.
docs/archive-format.md describes the format; tests/test_folder_format.py holds the two to each
other.

``layout``     the file names, which of them are ours, bundle and version paths
``manifest``   the md5sum manifest: line format, write and parse
``schema``     ``ArchiveRecord``, the typed record with its schema version; JSON both ways;
               ``read_head`` (the record without its per-file parts, in bounded memory)
``indexpage``  index.html, rendered from the record alone (status block after purge/restore)

Both sides (login node and job).  Imports nothing of the CLI.
"""
