"""Config layers as an admin uses them: tables merge key by key, lists extend, every element
names its layer, a broken site file never stops the commands that do not need the broken key,
`config init` is a file whose every commented line loads, `config set --site`, `config keys`
lists everything, values are checked against their domain and unknown keys get "did you mean".

The site layer is always a file in the test's temporary directory ($FROSTER_SLURM_SITE_CONFIG,
set by conftest's isolated_env), never the machine's /etc.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from froster_slurm.cli import main
from froster_slurm.config import (
    DEFAULTS,
    init_config_file,
    load_config,
    save_snapshot,
    set_value,
    site_config_path,
    user_config_path,
)
from froster_slurm.errors import ConfigError
from froster_slurm.pick.selection import monthly_cost


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def site() -> Path:
    return site_config_path()


# --- 4. layers merge -------------------------------------------------------------------------

def test_a_site_price_keeps_the_other_built_in_prices() -> None:
    write(site(), "[cost.per_tb_month]\nDEEP_ARCHIVE = 0.5\n")
    cfg = load_config()
    prices = cfg.get("cost.per_tb_month")
    assert prices["DEEP_ARCHIVE"] == 0.5
    assert prices["GLACIER"] == DEFAULTS["cost.per_tb_month"][0]["GLACIER"]
    assert monthly_cost(10**12, "GLACIER", prices) == pytest.approx(3.6)


def test_nested_tables_merge_leaf_by_leaf_across_site_and_user() -> None:
    write(site(), "[restore.price_per_gb.DEEP_ARCHIVE]\nBulk = 0.001\n")
    write(user_config_path(), "[restore.price_per_gb.GLACIER]\nStandard = 0.02\n")
    table = load_config().get("restore.price_per_gb")
    assert table["DEEP_ARCHIVE"] == {"Bulk": 0.001, "Standard": 0.02}
    assert table["GLACIER"] == {"Bulk": 0.0, "Standard": 0.02}


def test_lists_extend_across_layers_and_stages() -> None:
    write(site(), '[slurm]\nextra = ["--constraint=dtn"]\n'
                  '[slurm.archive]\nextra = ["--mail-type=FAIL"]\n')
    write(user_config_path(), '[slurm.archive]\nextra = ["--mail-user=me@lab"]\n')
    cfg = load_config()
    assert cfg.get("slurm.archive.extra") == ["--mail-type=FAIL", "--mail-user=me@lab"]
    assert cfg.slurm_options("archive")["extra"] == ["--constraint=dtn", "--mail-type=FAIL",
                                                     "--mail-user=me@lab"]
    assert cfg.slurm_options("rank")["extra"] == ["--constraint=dtn"]


def test_every_list_key_declares_extend_or_replace_and_keys_says_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    from froster_slurm.config.keys import LIST_MERGE
    lists = [k for k, (d, _) in DEFAULTS.items()
             if isinstance(d, list) or (d is None and k.rsplit(".", 1)[1] in
                                        ("extra", "prologue", "skip"))]
    assert lists and all(LIST_MERGE[k] in ("extend", "replace") for k in lists)
    assert main(["config", "keys"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^slurm\.archive\.extra = .*\n.*extends", text, re.M)


def test_config_show_names_the_layer_of_each_element(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    write(site(), '[cost.per_tb_month]\nDEEP_ARCHIVE = 0.5\n'
                  '[slurm]\nextra = ["--constraint=dtn"]\n')
    write(user_config_path(), '[slurm]\nextra = ["--mail-type=FAIL"]\n')
    assert main(["config", "show"]) == 0
    lines = capsys.readouterr().out.splitlines()

    def line(prefix: str) -> str:
        return next(ln for ln in lines if ln.startswith(prefix + " "))
    assert "site (" in line("cost.per_tb_month.DEEP_ARCHIVE")
    assert "default" in line("cost.per_tb_month.GLACIER")
    assert "site (" in line("slurm.extra[0]") and "dtn" in line("slurm.extra[0]")
    assert "user (" in line("slurm.extra[1]") and "FAIL" in line("slurm.extra[1]")


# --- 5. a broken site file -------------------------------------------------------------------

def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "froster_slurm", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_a_typo_in_the_site_file_names_file_and_line_and_status_still_works() -> None:
    write(site(), '# site\n[archive]\nthrottle = 4\nstorage_clas = "GLACIER"\n')
    for args in (["status", "--all"], ["catalog"], ["config", "show"]):
        proc = run_cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        warnings = [ln for ln in proc.stderr.splitlines() if "warning" in ln]
        assert len(warnings) == 1, proc.stderr
        assert f"{site()} line 4" in warnings[0]
        assert "did you mean 'archive.storage_class'" in warnings[0]
    cfg = load_config()
    assert cfg.get("archive.throttle") == 4  # the good keys of the file still apply
    with pytest.raises(ConfigError, match=rf"{re.escape(str(site()))} line 4"):
        cfg.get("archive.storage_class")  # the key the admin meant is not silently the default
    with pytest.raises(ConfigError, match="line 4"):
        save_snapshot(cfg, Path(os.environ["XDG_CONFIG_HOME"]) / "snap.toml")


def test_bad_toml_and_bad_values_in_the_site_file_name_the_line(tmp_path: Path) -> None:
    write(site(), '[archive]\nthrottle = 4\nstorage_class = "DEEP_ARCHIV"\n'
                  '[rank]\nmin_size = 1GiB\n')
    cfg = load_config()
    assert cfg.get("archive.throttle") == 4
    with pytest.raises(ConfigError, match=r"line 3.*DEEP_ARCHIV.*did you mean DEEP_ARCHIVE"):
        cfg.get("archive.storage_class")
    with pytest.raises(ConfigError, match=r"line 5: not valid TOML"):
        cfg.get("rank.min_size")
    assert len(cfg.problems) == 2
    proc = run_cli("config", "show")
    assert proc.returncode == 0 and proc.stderr.count("warning") == 2
    write(site(), "[archive\nthrottle = 4\n")
    cfg = load_config()  # nothing of the file can be trusted: commands that queue jobs refuse
    assert cfg.get("archive.throttle") == 8
    with pytest.raises(ConfigError, match="line 1"):
        save_snapshot(cfg, tmp_path / "snap.toml")
    assert run_cli("status", "--all").returncode == 0


def test_a_broken_user_file_is_still_an_error_for_its_owner() -> None:
    write(user_config_path(), '[archive]\nstorage_clas = "GLACIER"\n')
    with pytest.raises(ConfigError, match=r"line 2.*did you mean 'archive.storage_class'"):
        load_config()


# --- 6. init, set --site, keys, validation, did you mean ---------------------------------------

def test_init_file_uncommented_as_is_loads_with_every_default(tmp_path: Path) -> None:
    path = init_config_file(user_config_path())
    lines = path.read_text().splitlines()
    assert any(ln == "# [cost.per_tb_month]" for ln in lines)
    assert not any(re.fullmatch(r"# \[(per_tb_month|price_per_gb\.\w+)\]", ln) for ln in lines)
    # Every line that starts with '# ' is a setting; prose starts with '##'.
    body = "\n".join(ln[2:] if ln.startswith("# ") else ln for ln in lines)
    path.write_text(body + "\n")
    cfg = load_config()
    for key, (default, _) in DEFAULTS.items():
        if default is not None and key != "state_dir":  # state_dir: set by the test's env
            assert cfg.get(key) == default, key
            assert cfg.source(key).startswith("user"), key


def test_set_site_writes_the_site_file_and_set_checks_domains(capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    assert main(["config", "set", "--site", "templates_dir", "/opt/site/templates"]) == 0
    assert "templates_dir" in site().read_text()
    assert load_config().source("templates_dir").startswith("site")
    assert not user_config_path().exists()
    capsys.readouterr()
    assert main(["config", "set", "archive.storage_class", "DEEP_ARCHIV"]) == 78
    assert "did you mean DEEP_ARCHIVE" in capsys.readouterr().err
    for key, bad in (("rank.min_size", "lots"), ("rank.older_than", "soon"),
                     ("slurm.time", "two days"), ("slurm.archive.mem", "4 gigs"),
                     ("backend", "pbs"), ("restore.tier", "Fast")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            set_value(user_config_path(), key, bad)
    for key, good in (("rank.min_size", "500GiB"), ("rank.older_than", "2y"),
                      ("slurm.time", "2-00:00:00"), ("slurm.archive.mem", "4G"),
                      ("archive.storage_class", "GLACIER")):
        set_value(user_config_path(), key, good)
    with pytest.raises(ConfigError, match="GLACEIR"):
        set_value(user_config_path(), "cost.per_tb_month", '{GLACEIR = 1.0}')
    with pytest.raises(ConfigError, match="GLACEIR"):
        set_value(user_config_path(), "cost.per_tb_month.GLACEIR", "1.0")
    set_value(user_config_path(), "cost.per_tb_month.GLACIER", "3.0")  # one entry of a table
    assert load_config().get("cost.per_tb_month")["GLACIER"] == 3.0
    assert load_config().get("cost.per_tb_month")["STANDARD"] == 23.0
    assert not user_config_path().read_text().count("GLACEIR")


def test_unknown_keys_suggest_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    for typo, meant in (("archive.storage_clas", "archive.storage_class"),
                        ("slurm.archvie.time", "slurm.archive.time"),
                        ("templates_dri", "templates_dir"),
                        ("slurm.prolog", "slurm.prologue")):
        with pytest.raises(ConfigError, match=f"did you mean '{re.escape(meant)}'"):
            set_value(user_config_path(), typo, "1")


def test_config_keys_lists_every_key_per_stage_ones_included(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "keys"]) == 0
    text = capsys.readouterr().out
    listed = set(re.findall(r"^(\S+) = ", text, re.M))
    assert listed == set(DEFAULTS)
    assert {"slurm.archive.time", "slurm.purge.extra", "slurm.prologue",
            "slurm.rank.prologue", "slurm.skip"} <= listed


def test_config_show_json_is_still_plain_values(capsys: pytest.CaptureFixture[str]) -> None:
    write(site(), "[cost.per_tb_month]\nDEEP_ARCHIVE = 0.5\n")
    assert main(["config", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cost.per_tb_month"]["DEEP_ARCHIVE"] == 0.5
    assert data["cost.per_tb_month"]["GLACIER"] == 3.6


def test_state_dir_follows_xdg_state_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FROSTER_SLURM_")}
    env["FROSTER_SLURM_SITE_CONFIG"] = str(tmp_path / "none.toml")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    cfg = load_config(env=env)
    assert cfg.path("state_dir") == tmp_path / "state" / "froster-slurm"
    assert "XDG_STATE_HOME" in cfg.source("state_dir")
    env["XDG_STATE_HOME"] = "relative/ignored"  # the spec: a relative value is ignored
    assert load_config(env=env).path("state_dir") == Path.home() / ".local/state/froster-slurm"
    env.pop("XDG_STATE_HOME")
    env["FROSTER_SLURM_STATE_DIR"] = str(tmp_path / "mine")
    assert load_config(env=env).path("state_dir") == tmp_path / "mine"  # a setting still wins
