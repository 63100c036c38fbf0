"""The job side: what runs inside Slurm (or under the local backend), one module per stage.

``python -m froster_slurm.jobs STAGE RUN_DIR [INDEX]`` (``__main__``) is the one entry point of
every job script.  Importing this package imports nothing else: a stage module is loaded only
when its stage runs, and none imports the CLI, Typer or Textual (tests/test_module_isolation.py).
"""
