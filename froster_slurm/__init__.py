"""froster-slurm: rank, pick and archive research folders to cold storage with Slurm jobs."""

__version__ = "0.1.0"
