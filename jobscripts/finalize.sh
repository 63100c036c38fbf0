# Read every task's state, write summary.json and summary.html, add the archived folders to the
# catalog and print the command that retries the failed ones. Finalize jobs of every run share
# one job name with --dependency=singleton, so catalog writes never overlap.
"$FROSTER_PYTHON" -m froster_slurm.jobs finalize "$FROSTER_RUN_DIR"
