"""Restore and purge: get archived data back, and free the disk only when provably safe.

Modules, one job each:

``record``      read a folder's trace (record + manifest), cross-checked
``members``     which names an archive may write: record collisions, bundle members
``trust``       whether a record (or catalog row) is of the folder and owner being restored
``quarantine``  purge's delete: rename into a private folder, check the inode, unlink
``safefs``      file-system access that never follows a symlink (walk, hash, unlinkat)
``purge``       the proof (scan, remote check, re-hash) and the guarded deletes
``purge_run``   `purge` on the manager side: pre-check, confirm, inline or Slurm job
``estimate``    time and cost of a thaw, from config prices (estimates)
``remote``      rclone for purge/restore: hashes, `backend restore`, download
``guard``       stable job names and the squeue check (one job per target)
``state``       restore.json, the state of one restore across job runs
``submit``      `restore` on the manager side: find, estimate, request, submit one job
``job``         the guarded job: download, verify, unpack, place, update the trace
``unpack``      bundles -> staging (listed members only), verify against the manifest
``place``       staging -> target without clobbering; owners, modes and mtimes
``tracefiles``  record, index.html and catalog after a purge or a restore

Job entry point: ``python -m froster_slurm.restore restore|purge|retry-delay RUN_DIR``.
"""
