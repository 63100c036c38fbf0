"""The README's step-by-step works as written on the demo tree (issue 13 item 6).

Each line of the README's "Step by step" block runs in bash, as a person would paste it, in a
scratch folder (with a copy of scripts/), HOME pointing at the test's own folder, the local
backend (no Slurm needed: the archive finishes before `status` runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Lines that need something a test run has not got, and what they must say instead.
EXPECTED_REFUSALS = {
    "froster-slurm pick": (64, "pick needs an interactive terminal"),
    "froster-slurm retry": (64, "nothing to retry"),
}


def readme_steps() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("### Step by step", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines()
            if line.strip() and not line.startswith("#")]


def test_readme_step_by_step_on_the_demo_tree(tmp_path: Path) -> None:
    steps = readme_steps()
    assert steps[0].startswith("python3 scripts/make_demo_tree.py")
    assert any(s.startswith("froster-slurm archive") for s in steps)
    work = tmp_path / "work"
    shutil.copytree(REPO / "scripts", work / "scripts")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "FROSTER_SLURM_BACKEND": "local",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for step in steps:
        p = subprocess.run(["bash", "-c", step], cwd=work, env=env, capture_output=True,
                           text=True, timeout=300, stdin=subprocess.DEVNULL)
        refusal = next((v for k, v in EXPECTED_REFUSALS.items() if step.startswith(k)), None)
        if refusal:
            assert (p.returncode, refusal[1] in p.stderr) == (refusal[0], True), (step, p)
        else:
            assert p.returncode == 0, (step, p.stdout, p.stderr)
        if step.startswith("froster-slurm rank"):
            assert "folders listed           3" in p.stdout, p.stdout
        if step.startswith("froster-slurm select"):
            assert "selected 3 of 3 folders" in p.stdout, p.stdout
        if step.startswith("froster-slurm status"):
            assert "3/3 folders archived" in p.stdout, p.stdout
    assert (home / "demo-lab" / "2019-imaging" / "raw" / "Froster.manifest.md5").exists()
    assert (home / "demo-archive" / "froster").is_dir()
