#!/usr/bin/env bash
# make bench: every benchmark, each printing its figures beside a baseline measured in the
# same run. Generated data is cached under bench/out (delete it to regenerate).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p bench/out
bash scripts/slurm-cluster.sh up >/dev/null || echo "bench: no Slurm; the submit benchmark will fail" >&2
run() {
    echo
    echo "================ $* ================"
    PYTHONPATH=$PWD "$PY" "$@"
}
run bench/bench_crawl.py bench/out --shards
run bench/bench_rank.py --repeat 3
run bench/bench_select.py --rows 5000,20000,100000 --old-max 100000
run bench/bench_scale.py --repeat 3
run bench/bench_pick.py
run bench/bench_archive.py
run bench/bench_submit.py
run bench/bench_queue.py --folders 1000 --baseline 1000 --chained 40
run bench/bench_report.py
