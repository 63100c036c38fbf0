"""Read the input, build the tree and the plan, write the page (atomically)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..util.atomic import write_atomic
from . import page, source
from .model import build_tree
from .plan import Plan, PlanSettings, make_plan

if TYPE_CHECKING:
    from ..rank.loader import Engine


@dataclass(frozen=True)
class Written:
    path: Path
    size: int  # bytes of the HTML file
    folders: int
    plan: Plan


def write_report(inputs: Sequence[str], dest: str | os.PathLike, settings: PlanSettings,
                 engine: Engine, now: int | None = None) -> Written:
    now = int(time.time()) if now is None else int(now)
    src = source.load(inputs, settings.rules.by, engine)
    if not src.rows:
        raise UserError(f"{', '.join(inputs)}: no folders to report on")
    tree = build_tree(src.rows)
    plan = make_plan(tree.rows, settings, now)
    text = page.render(tree, plan, src.description, settings.rules.by, now)
    dest = Path(dest)
    try:
        write_atomic(dest, text)
    except OSError as e:
        raise UserError(f"cannot write {dest}: {e.strerror or e}") from e
    return Written(dest, dest.stat().st_size, len(tree.rows), plan)
