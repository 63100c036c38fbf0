"""Built-in bash bodies of the job stages (``*.sh``): data, read through importlib.resources.

This file makes the folder a real package once pyproject.toml maps it to
``froster_slurm.jobscripts``, so an installed wheel finds ``common.sh`` with no checkout present.
"""
