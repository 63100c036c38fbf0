"""Built-in job templates (``*.sbatch``, ``index.html``): data, read through importlib.resources.

This file makes the folder a real package once pyproject.toml maps it to
``froster_slurm.templates``, so an installed wheel finds its templates with no checkout present.
"""
