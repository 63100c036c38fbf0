# jobscripts/archive.sh: one archive array task, which archives one batch of folders: batch
# INDEX (INDEX = array offset + task id) of the run's batches.txt, a list of entries of its
# folders.nul (small folders travel together, a big one has a batch of its own). No folder
# appears in this script. Each folder keeps its own state, markers, record and status line
# (tasks/<folder index>/); this job's log is the batch's.
# The Python task runs in the background and we wait in a loop, so a signal is handled at once:
#   USR1 (--signal=B:USR1@grace, the time limit is near): stop the task cleanly, requeue now;
#   TERM (scontrol requeue, scancel, time limit reached): stop the task cleanly and end.
# A requeued batch skips its finished folders and resumes the one that was stopped.
# Exit codes of the task: FROSTER_EXIT_OK all done, FROSTER_EXIT_TEMPFAIL some folder to retry
# (requeue after the soonest delay its folders recorded, growing as retry_delay *
# 2^(failures-1), until max_attempts), FROSTER_EXIT_PERMANENT some folder failed for good and
# none is left to retry (the reasons are in their state.json and Comment); any other code is a
# crash that the task counts as transient for the folder it was on. USR1 and not USR2: rclone
# uses USR2.
FROSTER_INDEX=$((${FROSTER_ARRAY_OFFSET:-0} + ${SLURM_ARRAY_TASK_ID:?the archive stage runs as an array}))
froster_log "archive batch $FROSTER_INDEX of run ${FROSTER_RUN_DIR##*/} on ${HOSTNAME:-?}" \
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
