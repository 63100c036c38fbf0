# jobscripts/restore.sh: the guarded restore job. One pass = check whether the objects are
# readable, then download, verify, unpack, place and update the trace, each phase recorded in
# $FROSTER_RUN_DIR/restore.json so a requeued pass resumes where the last one stopped.
# Exit codes of the Python pass: FROSTER_EXIT_OK done, FROSTER_EXIT_TEMPFAIL not yet (still
# thawing) or a transient failure: requeue this same job after the delay it recorded,
# FROSTER_EXIT_PERMANENT failed for good (reason in restore.json and in the Comment). The
# payload runs in the background and we wait in a loop, so USR1 (time limit near) and TERM
# (requeue, cancel) are handled at once.
froster_use_task 0
froster_log "restore of run ${FROSTER_RUN_DIR##*/} on ${HOSTNAME:-?} (restart ${SLURM_RESTART_COUNT:-0})"

froster_run_payload "$FROSTER_PYTHON" -m froster_slurm.jobs restore "$FROSTER_RUN_DIR"
froster_log "restore pass ended with exit code $FROSTER_PAYLOAD_RC"

restore_retry_delay() {
    "$FROSTER_PYTHON" -m froster_slurm.jobs retry-delay "$FROSTER_RUN_DIR"
}
froster_requeue_tail 600 restore_retry_delay
