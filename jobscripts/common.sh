# jobscripts/common.sh: bash helpers every stage gets (inlined into each rendered script).
# Expects FROSTER_RUN_DIR, FROSTER_PYTHON and FROSTER_STAGE from the template. Under the local
# backend FROSTER_BACKEND=local and there is no scontrol: status goes to a file. The helpers
# that run a payload and requeue the job are in requeue.sh, inlined only into the stages that
# call them. Exit codes are FROSTER_EXIT_* (froster_slurm/errors.py): the renderer defines the
# ones a script uses above this file, so no script spells a number.
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
# also written to $FROSTER_STATUS_FILE once the stage called froster_use_task.
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

# froster_use_task INDEX: this job works for task INDEX of the run; its live status line is
# also written to the task's status file (what status reads under the local backend). The
# renderer defines FROSTER_TASK_STATUS_FILE above this file: that path with @INDEX@ for the
# index, from the run-directory contract (froster_slurm/run/rundir.py), never retyped here.
froster_use_task() {
    FROSTER_STATUS_FILE=${FROSTER_TASK_STATUS_FILE//@INDEX@/$1}
    mkdir -p "${FROSTER_STATUS_FILE%/*}"
}
