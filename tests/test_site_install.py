"""A site install, done the way the README's admin guide says, used by an ordinary account.

root (the admin) builds one shared venv from an interpreter every account may run, writes
the site config with `config init --site` / `config set --site` (interpreter, rclone,
templates_dir, partition, prologue) and exports one template to edit; an unprivileged account
that can write neither the site config nor the templates directory then archives a folder
through the real Slurm cluster.  Its job runs the site's interpreter, the site's rclone, the
site prologue and the edited template.  The site layer lives in a temporary directory
($FROSTER_SLURM_SITE_CONFIG), never the machine's /etc.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import account_env, ensure_account, run_as
from installed import Installed, build_and_install, remove

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def site_install() -> Iterator[tuple[Installed, Path]]:
    """The shared venv and a site directory (config, templates, a wrapped rclone)."""
    inst = build_and_install()  # from an interpreter every account may run (installed.py)
    site = Path(tempfile.mkdtemp(prefix="froster-site-"))
    site.chmod(0o755)
    try:
        yield inst, site
    finally:
        remove(inst)
        shutil.rmtree(site, ignore_errors=True)


def admin(inst: Installed, site: Path, *args: str) -> str:
    env = inst.env(FROSTER_SLURM_SITE_CONFIG=str(site / "etc" / "config.toml"),
                   XDG_CONFIG_HOME=str(site / "root-config"))
    env.pop("FROSTER_SLURM_STATE_DIR", None)
    proc = subprocess.run([str(inst.exe), *args], capture_output=True, text=True, env=env,
                          cwd=site, timeout=120)
    assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def test_site_install_serves_an_unprivileged_user_through_slurm(
        site_install: tuple[Installed, Path], slurm_cluster: None) -> None:
    inst, site = site_install
    rclone = shutil.which("rclone")
    assert rclone, "rclone is not installed (make setup)"
    # The site's rclone: a wrapper that records who ran it, then runs the real one.
    (site / "bin").mkdir()
    (site / "used").mkdir()
    (site / "used").chmod(0o1777)
    wrapper = site / "bin" / "rclone"
    wrapper.write_text(f'#!/bin/sh\ntouch "{site}/used/$(id -un)"\nexec {rclone} "$@"\n')
    wrapper.chmod(0o755)
    # The admin guide, step by step.
    admin(inst, site, "config", "init", "--site")
    admin(inst, site, "config", "set", "--site", "python", str(inst.python))
    admin(inst, site, "config", "set", "--site", "archive.rclone", str(wrapper))
    admin(inst, site, "config", "set", "--site", "templates_dir", str(site / "templates"))
    admin(inst, site, "config", "set", "--site", "slurm.prologue",
          '["export SITE_PROXY=http://proxy.example:3128", "echo site-prologue-ran"]')
    admin(inst, site, "config", "set", "--site", "cost.per_tb_month", "{DEEP_ARCHIVE = 0.5}")
    admin(inst, site, "templates", "export", str(site / "templates"), "archive.sbatch")
    template = site / "templates" / "archive.sbatch"
    template.write_text(template.read_text().replace(
        "@@PROLOGUE@@\n", "@@PROLOGUE@@\necho \"site-template-ran proxy=$SITE_PROXY\"\n"))
    listed = admin(inst, site, "templates", "list")
    assert any(ln.startswith("archive.sbatch") and " site " in ln for ln in listed.splitlines())
    for p in (site / "etc" / "config.toml", template):
        assert p.stat().st_uid == 0 and p.stat().st_mode & 0o022 == 0

    user = ensure_account("fstest-site")
    env = account_env(user, FROSTER_SLURM_SITE_CONFIG=str(site / "etc" / "config.toml"))
    home = Path(user.pw_dir)
    project = home / "site-test" / "project"
    shutil.rmtree(home / "site-test", ignore_errors=True)
    setup = run_as(user, ["bash", "-c", f"mkdir -p '{project}' && head -c 1500000 /dev/urandom "
                          f">'{project}/data.bin' && echo notes >'{project}/notes.txt'"], env=env)
    assert setup.returncode == 0, setup.stderr

    def user_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_as(user, [str(inst.exe), *args], env=env, timeout=120)

    # The user reads the site layer but cannot change it.
    shown = user_cli("config", "show").stdout
    assert any(ln.startswith("python ") and f"site ({site}" in ln for ln in shown.splitlines())
    assert any(ln.startswith("cost.per_tb_month.GLACIER ") and "default" in ln
               for ln in shown.splitlines())  # the site's one price kept the others
    denied = user_cli("config", "set", "--site", "archive.throttle", "1")
    assert denied.returncode == 78 and "cannot write" in denied.stderr, denied.stderr
    denied = user_cli("templates", "export", str(site / "templates"), "common.sh")
    assert denied.returncode != 0 and "cannot write" in denied.stderr, denied.stderr
    assert "Traceback" not in denied.stderr
    assert not (site / "templates" / "common.sh").exists()

    dest = home / "site-test" / "dest"
    sub = user_cli("archive", str(project), "--to", str(dest), "--backend", "slurm")
    assert sub.returncode == 0, sub.stdout + sub.stderr
    deadline = time.time() + 240
    while True:
        st = json.loads(user_cli("status", "last", "--json").stdout)
        if st["finished"] or time.time() > deadline:
            break
        time.sleep(1)
    assert st["finished"] and st["totals"]["done"] == 1, st
    runs = home / ".local" / "state" / "froster-slurm" / "runs"
    run_dir = max(runs.iterdir())
    (script,) = (run_dir / "scripts").glob("archive*.sbatch")
    text = script.read_text()
    assert f"export FROSTER_PYTHON={inst.python}\n" in text  # the site's interpreter
    log = "".join(p.read_text(errors="replace") for p in (run_dir / "logs").glob("archive-*"))
    assert "site-prologue-ran" in log
    assert "site-template-ran proxy=http://proxy.example:3128" in log
    assert (site / "used" / "fstest-site").exists()  # the site's rclone did the transfer
    assert any(p.name == "data.bin" for p in dest.rglob("*")), list(dest.rglob("*"))
