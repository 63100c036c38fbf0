# jobscripts/common.sh: bash helpers shared by every stage (inlined into each rendered script).
# Expects FROSTER_RUN_DIR, FROSTER_PYTHON and FROSTER_STAGE from the template. Under the local
# backend FROSTER_BACKEND=local and there is no scontrol: status goes to a file, and a requeue
# is exit code 75 (the local backend runs the task again after its state's retry_after).
set -euo pipefail

# The id this job answers to. Inside an array task it MUST be ARRAYID_TASKID: for a task,
# SLURM_JOB_ID alone would make scontrol act on the whole array.
froster_job_ref() {
    if [[ -n ${SLURM_ARRAY_JOB_ID:-} && -n ${SLURM_ARRAY_TASK_ID:-} ]]; then
        printf '%s_%s\n' "$SLURM_ARRAY_JOB_ID" "$SLURM_ARRAY_TASK_ID"
    else
        printf '%s\n' "${SLURM_JOB_ID:-local}"
    fi
}

froster_under_slurm() {
    [[ ${FROSTER_BACKEND:-slurm} != local && -n ${SLURM_JOB_ID:-} ]] &&
        command -v scontrol >/dev/null 2>&1
}

# froster_log MESSAGE...: one timestamped line in the job's output file. A log line that
# cannot be written (the file system of the run directory is full) must not end the job under
# `set -e` before it could requeue itself: the payload reports the real problem.
froster_log() {
    printf '%s %s[%s]: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "${FROSTER_STAGE:-job}" \
        "$(froster_job_ref)" "$*" >&2 || true
}

# froster_step NAME: mark the start of a step in the log and in the live status line.
froster_step() {
    froster_log "step $1"
    froster_status "${FROSTER_STAGE:-job} $1"
}

# froster_status TEXT...: the live status line. Under Slurm the job's Comment (shown by
# `squeue -o %k`; at most 1024 bytes; cannot be set after the job ended, which is ignored);
# also written to $FROSTER_STATUS_FILE when the stage sets one.
froster_status() {
    local text="$*"
    text=${text//$'\n'/ }
    text=${text:0:1000}
    if froster_under_slurm; then
        scontrol update job="$(froster_job_ref)" Comment="$text" >/dev/null 2>&1 || true
    fi
    if [[ -n ${FROSTER_STATUS_FILE:-} ]]; then
        { printf '%s\n' "$text" >"$FROSTER_STATUS_FILE.tmp.$$" &&
            mv -f "$FROSTER_STATUS_FILE.tmp.$$" "$FROSTER_STATUS_FILE"; } 2>/dev/null || true
    fi
}

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
# Local backend: exit 75; the backend reruns the task after the retry_after in its state.
froster_requeue() {
    local delay=${1:-0} ref
    [[ $delay =~ ^[0-9]+$ ]] || delay=60
    ref=$(froster_job_ref)
    if ! froster_under_slurm; then
        froster_log "asking the local backend for a requeue in ${delay}s (exit 75)"
        exit 75
    fi
    trap '' TERM USR1
    if ! scontrol requeue "$ref"; then
        froster_log "scontrol requeue $ref failed (is the job requeueable?); exiting 75"
        froster_status "${FROSTER_STAGE:-job}: requeue failed; resubmit with froster-slurm retry"
        exit 75
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
