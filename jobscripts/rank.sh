# Rank the crawl, apply the run's selection rules, then submit the archive array(s) and the
# finalize job: the array's size is only known now. The Python side scrubs the inherited
# SLURM_*/SBATCH_*/SRUN_* variables before it calls sbatch.
"$FROSTER_PYTHON" -m froster_slurm.jobs rank "$FROSTER_RUN_DIR"
