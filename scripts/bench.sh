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
# tiny folders end to end: one per task (100), batched without pooling (300), pooled (1,000)
run bench/bench_queue.py --folders 1000 --baseline 100 --unpooled 300 --chained 40
# 10,000 folders, default batches, and in many small batches under a queue cap of 500
run bench/bench_queue.py bench/out/queue10k --folders 10000 --baseline 0 --cap 500
run bench/bench_queue.py bench/out/queue10k-capped --folders 10000 --baseline 0 --cap 500 \
    --task-minutes 1 --folder-seconds 10
run bench/bench_report.py
