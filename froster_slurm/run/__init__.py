"""The run directory: what every stage of a run reads and writes, on both sides.

``rundir`` is the run-directory contract (Run: run.toml, jobs.toml, folders.nul, the frozen
config; create, open, list), ``taskstate`` the per-task state files of the archive array,
``history`` the runs list and prune.  The login node creates runs; jobs fill them in.
"""
