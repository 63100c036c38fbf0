"""The archive stage inside one Slurm array task: one folder to cold storage, verified.

Modules, one job each:

``settings``   the run's ``[archive]`` settings (run.toml), with checksum-weakening flags refused
``inventory``  step 1: what is in the folder (files, symlinks, dirs, hard links; never follows)
``bundle``     step 2: small files, links, empty dirs, odd names -> tar bundles (work dir)
``hashing``    step 3: md5 of the other files on a bounded thread pool; resumable results
``verify``     step 5: the remote's md5 of every object against ours, nothing downloaded
``trace``      step 6: the record and manifest of this archive (format: ``froster_slurm.folder``)
``steps``      the step runner with markers, resume and source-change detection
``names``      how a name is written for each target (keys, md5sum, shell, redaction)

Remote layout for folder ``/abs/folder``, with ``DEST = REMOTE/<prefix>/abs/folder`` (control
characters of the path shown as rclone's control pictures, see ``names.encode_ctl``)::

    DEST/<relative path>                  each large, object-safe file (storage class of the run)
    DEST/Froster.bundles/RUNID-INDEX/bundle-NNNNN.tar   the bundles (storage class of the run)
    DEST/Froster.manifest.md5             the trace, STANDARD storage class
    DEST/Froster.archive.json
    DEST/index.html | Froster.index.html

Job side.  The rclone boundary is ``froster_slurm.remotes.rclone``; the task's lifecycle
(signals, attempts, exit codes) is ``froster_slurm.jobs.archive_stage``, run by
``python -m froster_slurm.jobs archive RUN_DIR INDEX``.
"""
