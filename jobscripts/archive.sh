# jobscripts/archive.sh: one archive array task. The folder is entry INDEX of the run's
# folders.nul (INDEX = array offset + task id); it never appears in this script.
# The Python task runs in the background and we wait in a loop, so a signal is handled at once:
#   USR1 (--signal=B:USR1@grace, the time limit is near): stop the task cleanly, requeue now;
#   TERM (scontrol requeue, scancel, time limit reached): stop the task cleanly and end.
# Exit codes of the task: FROSTER_EXIT_OK done, FROSTER_EXIT_TEMPFAIL transient (requeue after
# the delay it recorded, growing as retry_delay * 2^(failures-1), until max_attempts),
# FROSTER_EXIT_PERMANENT failed for good (the reason is in its state.json and Comment); any
# other code is a crash that the task counts as transient. USR1 and not USR2: rclone uses USR2.
FROSTER_INDEX=$((${FROSTER_ARRAY_OFFSET:-0} + ${SLURM_ARRAY_TASK_ID:?the archive stage runs as an array}))
froster_use_task "$FROSTER_INDEX"
froster_log "archive task $FROSTER_INDEX of run ${FROSTER_RUN_DIR##*/} on ${HOSTNAME:-?}" \
    "(restart ${SLURM_RESTART_COUNT:-0})"

froster_run_payload "$FROSTER_PYTHON" -m froster_slurm.jobs archive "$FROSTER_RUN_DIR" \
    "$FROSTER_INDEX"
froster_log "task process ended with exit code $FROSTER_PAYLOAD_RC"

# Python decides whether a crash (killed, out of memory) is worth a retry, and how long to wait.
archive_interrupted() {
    "$FROSTER_PYTHON" -m froster_slurm.jobs interrupted "$FROSTER_RUN_DIR" "$FROSTER_INDEX" "$1"
}
archive_retry_delay() {
    "$FROSTER_PYTHON" -m froster_slurm.jobs retry-delay "$FROSTER_RUN_DIR" "$FROSTER_INDEX"
}
froster_requeue_tail 60 archive_retry_delay archive_interrupted
