# jobscripts/purge.sh: purge the run's folders. For each folder, in this job and before any
# delete: the trace is checked, the folder scanned for new, missing or changed entries, the
# remote's md5 of every object compared with the record, and every local file re-hashed
# against the manifest. Results go to $FROSTER_RUN_DIR/purge.json and this log.
# Exit codes: FROSTER_EXIT_OK every folder purged, FROSTER_EXIT_INCOMPLETE some were refused
# (nothing was deleted in those).
froster_use_task 0
froster_step "verify and purge"
rc=0
"$FROSTER_PYTHON" -m froster_slurm.jobs purge "$FROSTER_RUN_DIR" || rc=$?
froster_status "purge ended with exit code $rc"
exit "$rc"
