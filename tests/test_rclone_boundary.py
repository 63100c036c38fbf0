"""The rclone boundary (issue 14 item 4): rclone is started in remotes/rclone.py only, by
``Rclone.run`` (copies, listings, hashes) or ``query`` (short questions: preflight's probes
and ``Rclone.capture``); every other module that starts a process starts something else."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

import froster_slurm
from froster_slurm.errors import PermanentError
from froster_slurm.remotes.rclone import Rclone, query
from froster_slurm.submit.preflight import Probe

PACKAGE = Path(froster_slurm.__file__).resolve().parent
# Modules that start processes, and what they start (none of them rclone).
OTHER_PROCESSES = {
    "crawl/pwalk.py": "pwalk",
    "rank/feed.py": "wc and grep over the crawl files",
    "scheduler/slurm.py": "sbatch, squeue, sacct, scontrol, scancel",
    "scheduler/backends.py": "bash, the local backend",
    "submit/render.py": "bash -n on a rendered script",
}


def test_only_the_boundary_starts_rclone() -> None:
    starts = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text())
        imported = any(isinstance(n, ast.Import) and any(a.name == "subprocess" for a in n.names)
                       or isinstance(n, ast.ImportFrom) and n.module == "subprocess"
                       for n in ast.walk(tree))
        if imported:
            starts[rel] = tree
    assert set(starts) - {"remotes/rclone.py"} == set(OTHER_PROCESSES)
    for rel in OTHER_PROCESSES:
        assert "rclone" not in (PACKAGE / rel).read_text().lower(), rel
    # Inside the boundary: processes start in query and Rclone.run, nowhere else.
    callers = set()
    for node in ast.walk(starts["remotes/rclone.py"]):
        if isinstance(node, ast.FunctionDef):
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and \
                        isinstance(call.func.value, ast.Name) and \
                        call.func.value.id == "subprocess":
                    callers.add(node.name)
    assert callers == {"query", "run"}


def test_a_missing_rclone_is_an_answer_to_preflight_and_an_error_to_a_job(tmp_path: Path
                                                                       ) -> None:
    missing = str(tmp_path / "no-rclone")
    assert query(missing, ["version"]).missing
    rc, _out, err = Probe(missing).run(["version"])
    assert rc == 127 and "not found" in err
    rclone = Rclone(missing)
    with pytest.raises(PermanentError, match="not found"):
        rclone.capture(["version"])


@pytest.mark.skipif(shutil.which("rclone") is None, reason="no rclone on PATH")
def test_preflight_asks_the_same_rclone_through_the_boundary() -> None:
    exe = shutil.which("rclone") or "rclone"
    version, why = Probe(exe).version()
    assert version and version.startswith("rclone v") and why == ""
    result, out = Rclone(exe).capture(["version"])
    assert result.returncode == 0 and out.decode().splitlines()[0] == version
