"""Hotspots rows shared by the selection and picker tests (not a test module)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from froster_slurm.rank.hotspots import Hotspot, write_hotspots

NOW = 1_700_000_000
DAY = 86400
TiB = 2**40
GiB = 2**30
PRICES = {"DEEP_ARCHIVE": 0.99, "GLACIER": 3.6}
CAFE = b"/data/lab/caf\xe9"  # not UTF-8: shown as caf\xe9, written as the raw byte


def hs(folder: bytes, size: int, *, total: int | None = None, files: int = 10,
       total_files: int | None = None, owner: str = "alice", mtime_days: float = 400,
       atime_days: float = 300) -> Hotspot:
    return Hotspot(folder=folder, bytes=size, files=files, total_bytes=total or size,
                   total_files=total_files or files, allocated_bytes=size,
                   avg_file_bytes=size // files, newest_mtime=int(NOW - mtime_days * DAY),
                   newest_atime=int(NOW - atime_days * DAY), owner=owner, group="lab",
                   depth=folder.count(b"/"))


def sample_rows() -> list[Hotspot]:
    """Five folders: a parent/child pair, a non-UTF-8 name, a recent one, a markup-like one."""
    return [
        hs(b"/data/lab/a", 5 * TiB, total=7 * TiB, files=100, total_files=150),
        hs(b"/data/lab/a/sub", 2 * TiB, files=50),
        hs(CAFE, 3 * GiB, owner="bob", files=3),
        hs(b"/data/lab/new", 10**9, owner="carol", mtime_days=10, atime_days=1),
        hs(b"/data/other/[bold]x", 500 * GiB, files=5),
    ]


def write_sample(path: Path, rows: list[Hotspot] | None = None) -> Path:
    write_hotspots(path, sample_rows() if rows is None else rows)
    return path


def drive(app: Any, script: Callable[[Any], Awaitable[None]],
          size: tuple[int, int] = (120, 24)) -> Any:
    """Run a Textual app headless, run ``script(pilot)`` in it, return the app."""
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await script(pilot)
    asyncio.run(main())
    return app
