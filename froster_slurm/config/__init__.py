"""Configuration: built-in defaults < site file < user file < FROSTER_SLURM_* < flags.

Both sides: the login node loads the live layers (``load_config``); a job reads the snapshot
frozen into its run (``load_snapshot``, via ``run.rundir.run_config``).  ``layers`` merges the
layers, ``keys`` declares every key, ``lines`` finds a key's line in a TOML file for error
messages, ``file`` edits a config file in place.  Callers import from this package.
"""

from .keys import DEFAULTS, STAGES
from .layers import (
    ENV_PREFIX,
    ENV_SITE_CONFIG,
    Config,
    Setting,
    init_config_file,
    load_config,
    load_snapshot,
    save_snapshot,
    set_value,
    site_config_path,
    user_config_path,
)

__all__ = ["DEFAULTS", "ENV_PREFIX", "ENV_SITE_CONFIG", "STAGES", "Config", "Setting",
           "init_config_file", "load_config", "load_snapshot", "save_snapshot", "set_value",
           "site_config_path", "user_config_path"]
