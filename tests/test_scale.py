"""Issue 16 at scale, on synthetic runs (tests/scale_runs.py): finalize's memory is flat in the
number of files archived; status of a large run answers with totals and failures first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scale_runs import make_scale_run

from froster_slurm.catalog import store as catalog

PEAK = """
import json, resource, sys
from pathlib import Path
from froster_slurm.jobs.finalize_stage import finalize
from froster_slurm.run.rundir import Run
s = finalize(Run(Path(sys.argv[1])))
print(json.dumps({"totals": s["totals"], "catalog_error": s["catalog_error"],
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def finalize_peak(run_dir: Path) -> dict:
    """finalize in a process of its own; its peak RSS (KiB) beside its totals."""
    out = subprocess.run([sys.executable, "-c", PEAK, str(run_dir)], capture_output=True,
                         text=True, timeout=300, cwd=run_dir, check=True)
    return json.loads(out.stdout)


def test_finalize_memory_is_flat_in_the_number_of_files(tmp_path: Path) -> None:
    """30 folders of 100 files, then of 2,000: 57,000 more files archived.  Before issue 16
    finalize held every record (~1.2 KB per file: 67 MiB more here); now each record is read
    as its head and dropped, rows reach the catalog in batches."""
    small = make_scale_run(tmp_path / "small", 30, files=100, mix={"failed": 2})
    large = make_scale_run(tmp_path / "large", 30, files=2000, mix={"failed": 2})
    a, b = finalize_peak(small), finalize_peak(large)
    for got, files in ((a, 100), (b, 2000)):
        assert got["catalog_error"] is None
        assert (got["totals"]["done"], got["totals"]["catalog_added"]) == (28, 28)
        assert got["totals"]["files"] == 28 * files
    growth_mib = (b["peak_kib"] - a["peak_kib"]) / 1024
    assert growth_mib < 12, (a, b)
    entries = catalog.entries(tmp_path / "large" / "catalog.duckdb")
    assert len(entries) == 28 and {e.files for e in entries} == {2000}
