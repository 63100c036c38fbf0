# jobscripts/purge.sh: purge the run's folders. For each folder, in this job and before any
# delete: the trace is checked, the folder scanned for new, missing or changed entries, the
# remote's md5 of every object compared with the record, and every local file re-hashed
# against the manifest. Results go to $FROSTER_RUN_DIR/purge.json and this log.
# Exit codes: 0 every folder purged, 3 some were refused (nothing was deleted in those).
FROSTER_STATUS_FILE="$FROSTER_RUN_DIR/tasks/0/comment"
mkdir -p "$FROSTER_RUN_DIR/tasks/0"
froster_step "verify and purge"
rc=0
"$FROSTER_PYTHON" -m froster_slurm.restore purge "$FROSTER_RUN_DIR" || rc=$?
froster_status "purge ended with exit code $rc"
exit "$rc"
