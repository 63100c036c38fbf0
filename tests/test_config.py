"""Config layering: defaults < site < user < env < flags, with sources and strict keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from froster_slurm.cli import main
from froster_slurm.config import init_config_file, load_config, set_value, user_config_path
from froster_slurm.errors import ConfigError


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_defaults_have_default_source() -> None:
    cfg = load_config()
    assert cfg.get("archive.storage_class") == "DEEP_ARCHIVE"
    assert cfg.source("archive.storage_class") == "default"


def test_each_layer_overrides_the_one_below(isolated_env: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path(os.environ["FROSTER_SLURM_SITE_CONFIG"]),
          '[archive]\nstorage_class = "GLACIER"\nthrottle = 3\n[slurm]\npartition = "site"\n')
    write(user_config_path(), '[archive]\nthrottle = 4\n')
    cfg = load_config()
    assert cfg.get("archive.storage_class") == "GLACIER"
    assert cfg.source("archive.storage_class").startswith("site")
    assert cfg.get("archive.throttle") == 4
    assert cfg.source("archive.throttle").startswith("user")
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__THROTTLE", "5")
    cfg = load_config()
    assert cfg.get("archive.throttle") == 5
    assert cfg.source("archive.throttle") == "env FROSTER_SLURM_ARCHIVE__THROTTLE"
    cfg = load_config({"archive.throttle": 6, "archive.storage_class": None})
    assert cfg.get("archive.throttle") == 6
    assert cfg.source("archive.throttle") == "command line"
    assert cfg.get("archive.storage_class") == "GLACIER"  # None = flag not given


def test_per_stage_slurm_settings_override_the_common_ones() -> None:
    write(user_config_path(), '[slurm]\npartition = "batch"\ntime = "1:00:00"\n'
                              '[slurm.archive]\ntime = "7-00:00:00"\nextra = ["--exclusive"]\n')
    cfg = load_config()
    assert cfg.slurm_options("archive")["time"] == "7-00:00:00"
    assert cfg.slurm_options("archive")["partition"] == "batch"
    assert cfg.slurm_options("archive")["extra"] == ["--exclusive"]
    assert cfg.slurm_options("rank")["time"] == "1:00:00"


def test_unknown_key_lists_valid_ones() -> None:
    write(user_config_path(), '[archive]\nstorage_clas = "GLACIER"\n')
    with pytest.raises(ConfigError) as e:
        load_config()
    assert "archive.storage_clas" in str(e.value)
    assert "archive.storage_class" in str(e.value)


def test_wrong_type_and_bad_toml_are_errors() -> None:
    write(user_config_path(), '[archive]\nthrottle = "many"\n')
    with pytest.raises(ConfigError, match="throttle must be a int"):
        load_config()
    write(user_config_path(), '[archive\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config()


def test_unknown_env_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__NOPE", "1")
    with pytest.raises(ConfigError, match="FROSTER_SLURM_ARCHIVE__NOPE"):
        load_config()


def test_init_writes_a_commented_file_that_loads(isolated_env: Path) -> None:
    path = init_config_file(user_config_path())
    text = path.read_text()
    assert "# storage_class = \"DEEP_ARCHIVE\"" in text
    assert load_config().source("archive.storage_class") == "default"
    with pytest.raises(ConfigError, match="exists"):
        init_config_file(user_config_path())


def test_set_validates_and_persists() -> None:
    assert set_value(user_config_path(), "archive.throttle", "12") == 12
    assert set_value(user_config_path(), "slurm.archive.partition", "long") == "long"
    cfg = load_config()
    assert cfg.get("archive.throttle") == 12
    assert cfg.slurm_options("archive")["partition"] == "long"
    with pytest.raises(ConfigError):
        set_value(user_config_path(), "archive.throttle", "[1")


def test_cli_config_show_and_bad_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "set", "archive.throttle", "9"]) == 0
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "archive.throttle" in shown and "user (" in shown
    assert main(["config", "set", "archive.nope", "1"]) == 78
    err = capsys.readouterr().err
    assert err.startswith("froster-slurm: error: unknown config key 'archive.nope'")
    assert "Traceback" not in err
