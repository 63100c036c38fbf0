"""SVG screenshots of the picker compared with pytest-textual-snapshot.

Deterministic by construction: fixed terminal size, fixed "now" for the ages, a fake
readability check that finishes before the screenshot.  Regenerate after an intended UI change:
    .venv/bin/pytest tests/test_pick_snapshot.py --snapshot-update
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pick_testdata import NOW, PRICES, sample_rows

from froster_slurm.pick.picker import PickApp

SIZE = (120, 16)


def make_app(tmp_path: Path) -> PickApp:
    return PickApp(sample_rows(), output=tmp_path / "sel", recursive=True, by="direct",
                   storage_class="DEEP_ARCHIVE", prices=PRICES, now=NOW,
                   readable=lambda folder: b"other" not in folder)


async def _settle(pilot) -> None:
    """Wait for the background readability checks so the '!' marks are in the picture."""
    app = pilot.app
    assert await asyncio.to_thread(app.access.wait, 10)
    app._poll_access()
    await pilot.pause()


def test_table_snapshot(snap_compare, tmp_path):
    # select /data/lab/a, then move down to the non-UTF-8 folder: selected row, cursor row,
    # unreadable row and the running totals are all visible.
    assert snap_compare(make_app(tmp_path), press=["space", "down"], terminal_size=SIZE,
                        run_before=_settle)


def test_confirm_snapshot(snap_compare, tmp_path):
    app = make_app(tmp_path)
    app.output = Path("/scratch/alice/hotspots.csv.selection")  # stable text in the picture
    assert snap_compare(app, press=["space", "c"], terminal_size=(120, 20), run_before=_settle)
