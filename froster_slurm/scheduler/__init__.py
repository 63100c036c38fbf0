"""The scheduler boundary: the only package that spells sbatch/squeue/scontrol/sacct.

``slurm`` is the client (SlurmClient) and ``backends`` the two ways a run executes
(SlurmBackend, LocalBackend): the login node submits and queries through them.  ``injob`` is
what a running job asks about itself (which task am I) and how it sets its live status line
(job side).
"""
