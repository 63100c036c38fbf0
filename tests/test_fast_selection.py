"""`make test-fast` selects what tests/conftest.py lists: every listed module and test exists,
so a rename never drops tests from the fast set unseen."""

from __future__ import annotations

import re
from pathlib import Path

import conftest

TESTS = Path(__file__).resolve().parent


def test_every_unit_module_and_excluded_test_exists() -> None:
    for module in sorted(conftest.UNIT_MODULES):
        assert (TESTS / f"{module}.py").is_file(), f"UNIT_MODULES names {module}: no such file"
    for entry in sorted(conftest.NOT_UNIT_TESTS):
        file, _, name = entry.partition("::")
        assert file.removesuffix(".py") in conftest.UNIT_MODULES, entry
        text = (TESTS / file).read_text()
        assert re.search(rf"^(?:async )?def {re.escape(name)}\(", text, re.M), entry
