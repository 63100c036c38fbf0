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


def synthetic_hotspots(path: Path, n: int) -> Path:
    """A hotspots file of ``n`` folders made in DuckDB (1M rows in about a second), for the
    picker's scale test and ``bench/bench_pick.py``.  Every 1000th name ends in the byte 0xE9
    (not UTF-8), every 997th holds a comma, quotes and a newline; sizes are spread by a
    multiplicative hash (many distinct, some equal), eight levels of folders under 50 labs.
    DuckDB writes the Latin-1 view of the lines, ``write_hotspots_from_view`` their bytes."""
    import duckdb

    from froster_slurm.rank.hotspots import write_hotspots_from_view

    view = Path(f"{path}.view")
    size = "((i * 2654435761) % (1::BIGINT << 40) + 1)"
    con = duckdb.connect(config={"memory_limit": "512MB"})
    try:
        con.execute(f"""COPY (SELECT
            '/data/lab' || (i % 50) || '/d' || ((i >> 3) % 97) || '/d' || ((i >> 7) % 97)
              || '/run' || i
              || CASE WHEN i % 1000 = 0 THEN chr(233) ELSE '' END
              || CASE WHEN i % 997 = 0 THEN ' a,"b"' || chr(10) || 'c' ELSE '' END AS folder,
            {size} AS bytes, 1 + i % 5000 AS files, {size} * 2 AS total_bytes,
            2 + i % 9000 AS total_files, {size} AS allocated_bytes,
            {size} // (1 + i % 5000) AS avg_file_bytes,
            {NOW} - (i * 40503) % (5 * 365 * {DAY}) AS newest_mtime,
            {NOW} - (i * 69069) % (365 * {DAY}) AS newest_atime,
            'user' || (i % 40) AS owner, 'lab' AS "group", 5 AS depth
            FROM range({int(n)}) t(i)) TO '{view}' (HEADER false)""")
    finally:
        con.close()
    try:
        write_hotspots_from_view(path, view)
    finally:
        view.unlink()
    return path
