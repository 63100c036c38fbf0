"""``python -m froster_slurm`` is the CLI (job scripts use it with the recorded interpreter)."""

from .cli import entry

entry()
