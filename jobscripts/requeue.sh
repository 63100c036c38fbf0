# jobscripts/requeue.sh: the payload runner and the requeue helpers of the requeueable stages
# (archive, restore). Inlined after common.sh only into a script whose body calls one of them.
# Under the local backend (no scontrol) a requeue is exit FROSTER_EXIT_TEMPFAIL: the local
# backend runs the task again once its requeue-after file says so (the batch's
# batches/<B>.requeue-after for an archive task, written by the job entry).

# froster_wait PID: wait for a background payload in a loop, so trapped signals (USR1 before
# the time limit, TERM on requeue/cancel) run their handlers at once instead of after the
# payload ends. Returns the payload's own exit status.
froster_wait() {
    local pid=$1 rc
    while :; do
        rc=0
        wait "$pid" || rc=$?
        if kill -0 "$pid" 2>/dev/null; then
            continue # a trapped signal interrupted wait; the payload still runs
        fi
        rc=0
        wait "$pid" || rc=$? # bash keeps the exit status of a finished background job
        return "$rc"
    done
}

# froster_run_payload CMD...: run CMD in the background with USR1 (time limit near) and TERM
# (requeue, cancel) trapped, and wait for it with froster_wait. Sets FROSTER_PAYLOAD_RC to its
# exit status and froster_stop to the signal that stopped it (USR1, TERM, or empty). On a
# signal the payload gets the same signal, so it stops cleanly at a step boundary and knows
# why: USR1 is the time limit (a slot that ends; the archive task counts slots without
# progress), TERM a requeue or cancel from outside.
froster_payload=""
froster_stop=""
froster_on_signal() {
    froster_stop=$1
    froster_log "got SIG$1: stopping the payload cleanly"
    if [[ -n $froster_payload ]]; then
        kill -"$1" "$froster_payload" 2>/dev/null || true
    fi
}
froster_run_payload() {
    trap 'froster_on_signal USR1' USR1
    trap 'froster_on_signal TERM' TERM
    "$@" &
    froster_payload=$!
    FROSTER_PAYLOAD_RC=0
    froster_wait "$froster_payload" || FROSTER_PAYLOAD_RC=$?
}

# froster_requeue DELAY: put this job (this array task) back in the queue, to start again no
# sooner than DELAY seconds from now. Never returns.
# Slurm: `scontrol requeue ID` (which sends TERM to this script: ignored, so the delay can still
# be set), then `scontrol update jobid=ID StartTime=now+DELAY` (on Slurm 22.05 the begin time
# of a job is updated with StartTime=; it is accepted while the requeued job completes).
# Local backend: exit FROSTER_EXIT_TEMPFAIL; the backend reruns the task once its
# requeue-after file says so.
froster_requeue() {
    local delay=${1:-0} ref
    [[ $delay =~ ^[0-9]+$ ]] || delay=60
    ref=$(froster_job_ref)
    if ! froster_under_slurm; then
        froster_log "asking the local backend for a requeue in ${delay}s (exit $FROSTER_EXIT_TEMPFAIL)"
        exit "$FROSTER_EXIT_TEMPFAIL"
    fi
    trap '' TERM USR1
    if ! scontrol requeue "$ref"; then
        froster_log "scontrol requeue $ref failed (is the job requeueable?);" \
            "exiting $FROSTER_EXIT_TEMPFAIL"
        froster_status "${FROSTER_STAGE:-job}: requeue failed; resubmit with froster-slurm retry"
        exit "$FROSTER_EXIT_TEMPFAIL"
    fi
    if ((delay > 0)); then
        if scontrol update jobid="$ref" StartTime="now+${delay}"; then
            froster_log "requeued $ref; it starts again in ${delay}s or later"
        else
            froster_log "requeued $ref, but could not delay its start; Slurm's own requeue delay applies"
        fi
    else
        froster_log "requeued $ref"
    fi
    exit 0
}

# froster_requeue_tail FALLBACK_DELAY RETRY_DELAY_CMD [INTERRUPTED_CMD]: how a requeueable
# stage ends once froster_run_payload returned; archive and restore share it. In order:
#   the payload's code is FROSTER_EXIT_OK or FROSTER_EXIT_PERMANENT: exit with it;
#   TERM stopped it (scontrol requeue, scancel, the time limit): exit 143 (128 + TERM), Slurm
#   decides what happens next;
#   USR1 stopped it (the time limit is near): not a failure, requeue at once to resume;
#   any code but FROSTER_EXIT_TEMPFAIL (killed, out of memory, a crash) and INTERRUPTED_CMD
#   given: `INTERRUPTED_CMD CODE` counts it as a transient failure and answers with the code
#   to end with (OK or PERMANENT: exit with it; anything else: go on);
#   then `RETRY_DELAY_CMD` prints the seconds to wait (FALLBACK_DELAY when it cannot) and the
#   job requeues itself with that delay. Never returns.
froster_requeue_tail() {
    local fallback=$1 retry_delay=$2 interrupted=${3:-} rc=$FROSTER_PAYLOAD_RC code delay
    if ((rc == FROSTER_EXIT_OK || rc == FROSTER_EXIT_PERMANENT)); then
        exit "$rc"
    fi
    if [[ $froster_stop == TERM ]]; then
        exit 143
    fi
    if [[ $froster_stop == USR1 ]]; then
        froster_requeue 0
    fi
    if [[ -n $interrupted ]] && ((rc != FROSTER_EXIT_TEMPFAIL)); then
        code=$rc
        rc=$FROSTER_EXIT_OK
        "$interrupted" "$code" || rc=$?
        if ((rc == FROSTER_EXIT_OK || rc == FROSTER_EXIT_PERMANENT)); then
            exit "$rc"
        fi
    fi
    delay=$("$retry_delay") || delay=$fallback
    froster_requeue "$delay"
}
