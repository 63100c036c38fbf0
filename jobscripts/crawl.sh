# Crawl one share of the run's roots (array task N crawls shard N of the plan made at submit
# time) into <run>/crawl/shard-NNNN.csv. The paths are read from the run directory, never from
# this script's text.
"$FROSTER_PYTHON" -m froster_slurm.jobs crawl "$FROSTER_RUN_DIR" \
    "$((FROSTER_ARRAY_OFFSET + ${SLURM_ARRAY_TASK_ID:-0}))"
