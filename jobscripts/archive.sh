# jobscripts/archive.sh: one archive array task. The folder is entry INDEX of the run's
# folders.nul (INDEX = array offset + task id); it never appears in this script.
# The Python task runs in the background and we wait in a loop, so a signal is handled at once:
#   USR1 (--signal=B:USR1@grace, the time limit is near): stop the task cleanly, requeue now;
#   TERM (scontrol requeue, scancel, time limit reached): stop the task cleanly and end.
# Exit codes of the task: 0 done, 75 transient (requeue after the delay it recorded, growing as
# retry_delay * 2^(failures-1), until max_attempts), 70 failed for good (the reason is in its
# state.json and Comment). USR1 and not USR2: rclone uses USR2.
FROSTER_INDEX=$((${FROSTER_ARRAY_OFFSET:-0} + ${SLURM_ARRAY_TASK_ID:?the archive stage runs as an array}))
FROSTER_TASK_DIR="$FROSTER_RUN_DIR/tasks/$FROSTER_INDEX"
FROSTER_STATUS_FILE="$FROSTER_TASK_DIR/comment"
mkdir -p "$FROSTER_TASK_DIR"
froster_log "archive task $FROSTER_INDEX of run ${FROSTER_RUN_DIR##*/} on ${HOSTNAME:-?}" \
    "(restart ${SLURM_RESTART_COUNT:-0})"

froster_run_payload "$FROSTER_PYTHON" -m froster_slurm.task archive "$FROSTER_RUN_DIR" \
    "$FROSTER_INDEX"
rc=$FROSTER_PAYLOAD_RC
froster_log "task process ended with exit code $rc"

if ((rc == 0)); then
    exit 0
fi
if ((rc == 70)); then
    exit 70
fi
if [[ $froster_stop == TERM ]]; then
    exit 143 # requeued or cancelled from outside: Slurm decides what happens next
fi
if [[ $froster_stop == USR1 ]]; then
    froster_requeue 0 # the time limit is not a failure: resume at once, from the last step
fi
if ((rc != 75)); then
    # Killed, out of memory, a crash: count it as a transient failure (Python decides 75/70).
    code=$rc
    rc=0
    "$FROSTER_PYTHON" -m froster_slurm.task interrupted "$FROSTER_RUN_DIR" "$FROSTER_INDEX" \
        "$code" || rc=$?
    if ((rc == 0 || rc == 70)); then
        exit "$rc"
    fi
fi
delay=$("$FROSTER_PYTHON" -m froster_slurm.task retry-delay "$FROSTER_RUN_DIR" "$FROSTER_INDEX") ||
    delay=60
froster_requeue "$delay"
