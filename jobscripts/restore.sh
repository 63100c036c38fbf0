# jobscripts/restore.sh: the guarded restore job. One pass = check whether the objects are
# readable, then download, verify, unpack, place and update the trace, each phase recorded in
# $FROSTER_RUN_DIR/restore.json so a requeued pass resumes where the last one stopped.
# Exit codes of the Python pass: 0 done, 75 not yet (still thawing) or a transient failure:
# requeue this same job after the delay it recorded, 70 failed for good (reason in
# restore.json and in the Comment). The payload runs in the background and we wait in a loop,
# so USR1 (time limit near) and TERM (requeue, cancel) are handled at once.
FROSTER_STATUS_FILE="$FROSTER_RUN_DIR/tasks/0/comment"
mkdir -p "$FROSTER_RUN_DIR/tasks/0"
froster_log "restore of run ${FROSTER_RUN_DIR##*/} on ${HOSTNAME:-?} (restart ${SLURM_RESTART_COUNT:-0})"

froster_run_payload "$FROSTER_PYTHON" -m froster_slurm.restore restore "$FROSTER_RUN_DIR"
rc=$FROSTER_PAYLOAD_RC
froster_log "restore pass ended with exit code $rc"

if ((rc == 0 || rc == 70)); then
    exit "$rc"
fi
if [[ $froster_stop == TERM ]]; then
    exit 143 # requeued or cancelled from outside: Slurm decides what happens next
fi
if [[ $froster_stop == USR1 ]]; then
    froster_requeue 0 # the time limit is not a failure: resume at once
fi
delay=$("$FROSTER_PYTHON" -m froster_slurm.restore retry-delay "$FROSTER_RUN_DIR") || delay=600
froster_requeue "$delay"
