"""Restore: get archived data back into a folder, without clobbering, proven against the record.

Modules, one job each:

``record``      read a folder's trace (record + manifest), cross-checked
``members``     which names an archive may write: record collisions, bundle members
``trust``       whether a record (or catalog row) is of the folder and owner being restored
``safefs``      file-system access that never follows a symlink (walk, hash, unlinkat)
``estimate``    time and cost of a thaw, from config prices (estimates)
``remote``      rclone for restore (and purge): hashes, `backend restore`, download
``guard``       stable job names (one job per target)
``restorestate`` restore.json, the state of one restore across job runs
``submit``      `restore` on the manager side: find, estimate, request, submit one job
``job``         one run of the guarded job: download, verify, unpack, place, update the trace
``unpack``      bundles -> staging (listed members only), verify against the manifest
``place``       staging -> target without clobbering; owners, modes and mtimes
``holes``       punch the zero blocks of a file that was archived sparse
``tracefiles``  record, index.html and catalog after a purge or a restore

Login node: ``submit``, ``estimate``, ``guard``; job side: the rest.  The job's lifecycle
(signals, requeue delay, exit codes) is ``froster_slurm.jobs.restore_stage``, run by
``python -m froster_slurm.jobs restore RUN_DIR``.  Purge lives in ``froster_slurm.purge``.
"""
