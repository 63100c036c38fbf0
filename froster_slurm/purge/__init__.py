"""Purge: delete the local copy of an archived folder once the remote is proven to hold it.

``purger`` is the proof and the deletion of one folder (in the command or in the purge job),
``manager`` the login-node side (pre-check, then inline or one Slurm job), ``quarantine`` the
rename-verify-unlink of each file.  The job itself is ``froster_slurm.jobs.purge_stage``.
"""
