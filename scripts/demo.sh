#!/usr/bin/env bash
# make demo: archive a generated demo tree end to end, the way a user would.
#   crawl -> rank -> select (rules) -> archive array -> finalize, through the local Slurm
#   cluster (or the local backend when Slurm cannot start), then status, catalog, index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DEMO=$REPO/.demo
FS="$REPO/.venv/bin/froster-slurm"
export FROSTER_SLURM_STATE_DIR=$DEMO/state
export XDG_CONFIG_HOME=$DEMO/config

backend=local
if bash scripts/slurm-cluster.sh up; then
    backend=slurm
else
    echo "demo: Slurm could not start; using the local backend" >&2
fi

rm -rf "$DEMO/data" "$DEMO/archive"
mkdir -p "$DEMO"
"$REPO/.venv/bin/python" scripts/make_demo_tree.py "$DEMO/data"

echo
echo "== froster-slurm submit (backend: $backend) =="
"$FS" submit "$DEMO/data" --to "$DEMO/archive" --min-size 1MiB --min-avg-size 0 \
    --older-than 30d --backend "$backend" | tee "$DEMO/submit.txt"
run=$(awk '/^run /{print $2; exit}' "$DEMO/submit.txt")

echo
echo "== waiting for run $run =="
"$FS" status "$run" --watch --interval 2 >/dev/null
"$FS" status "$run"

echo
echo "== catalog =="
"$FS" catalog

echo
index=$(find "$DEMO/data" -name index.html -print -quit)
echo "== one archived folder's index.html: $index =="
echo "md5sum -c from that folder:"
(cd "$(dirname "$index")" && md5sum -c --quiet Froster.manifest.md5 && echo "  all files OK")
echo "summary: $FROSTER_SLURM_STATE_DIR/runs/$run/summary.html"
