# jobscripts/chain.sh: the archive queue's driver. A run queues one archive array at a time (at
# most slurm.max_queued tasks); this tiny job waits for that array with --dependency=afterany
# and then queues the next one, plus the next driver, or finalize after the last array.
# FROSTER_ARRAY_OFFSET carries the number of the submission whose arrays it chains
# (scripts/chain-NNN.json). It submits nothing twice: the plan file says what is queued.
froster_log "chain $FROSTER_ARRAY_OFFSET of run ${FROSTER_RUN_DIR##*/}: queueing the next archive array"
"$FROSTER_PYTHON" -m froster_slurm.jobs chain "$FROSTER_RUN_DIR" "$FROSTER_ARRAY_OFFSET"
