"""The rank stage: crawl CSVs -> one row per folder (hotspots.csv), aggregated by DuckDB.

``ranking`` is the entry (``rank_to_file``: the rank job's work), ``inputs`` finds and checks
the crawl files, ``loader``, ``inode_reader`` and ``feed`` load them, ``sql`` aggregates,
``crawl_summary`` describes a crawl, ``hotspots`` reads and writes hotspots.csv.  Runs in the
rank job and in ``froster-slurm rank`` on the login node.
"""
