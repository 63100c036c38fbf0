"""index.html as a browser sees it: real headless Chromium, a hostile folder name."""

from __future__ import annotations

import json
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from archive_helpers import make_run, need, run_task, write_file

HOSTILE = b"<script>alert(1)</script>"  # a path: folder '<script>alert(1)<' / 'script>'


class _Scan(HTMLParser):
    """Counts elements a name could have injected, and collects the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.external.append(value)
            assert not name.startswith("on"), (tag, name)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def dump_dom(chromium: str, page: Path, profile: Path) -> str:
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_index_html_in_chromium_shows_destination_and_escapes_names(tmp_path: Path) -> None:
    chromium = need("chromium")
    need("rclone")
    folder = os.fsencode(tmp_path / "src") + b"/" + HOSTILE
    write_file(folder + b"/<img src=x onerror=alert(2)>.txt", b"x")
    write_file(folder + b"/data.bin", os.urandom(200 * 1024))
    remote = tmp_path / "remote"
    run_dir = make_run(tmp_path / "state", [folder], str(remote),
                       bundle_threshold=64 * 1024)
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr
    record = json.loads((run_dir / "tasks" / "0" / "record.json").read_bytes())
    page = Path(os.fsdecode(folder)) / "index.html"
    dom = dump_dom(chromium, page, tmp_path / "profile")
    scan = _Scan()
    scan.feed(dom)
    text = "".join(scan.text)
    assert scan.tags.get("script", 0) == 0 and scan.tags.get("img", 0) == 0
    assert scan.external == []  # no external assets at all
    assert "<script>alert(1)</script>" in text  # shown literally, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<img src=x onerror=alert(2)>.txt" in text
    assert record["destination"] in text
    assert "froster-slurm restore" in text and "rclone copy --checksum" in text
    assert "md5sum -c Froster.manifest.md5" in text


def test_the_manual_restore_steps_use_a_private_temporary_directory_and_work(
        tmp_path: Path) -> None:
    """Seen: the steps used a fixed /tmp path that another user could create first and fill
    with bundles of their own (md5sum -c still said OK for the listed files).  The steps as
    printed on the page, run by bash, bring the folder back."""
    import html
    import re
    import shutil

    need("rclone")
    folder = os.fsencode(tmp_path / "src" / "proj")
    write_file(folder + b"/data.bin", os.urandom(200 * 1024))
    write_file(folder + b"/small/odd 'name'.txt", b"small")
    remote = tmp_path / "remote"
    run_dir = make_run(tmp_path / "state", [folder], str(remote), bundle_threshold=64 * 1024)
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr
    page = (Path(os.fsdecode(folder)) / "index.html").read_text()
    steps = html.unescape(re.search(r'<pre id="rclone-restore">(.*?)</pre>', page, re.S)[1])
    assert "mktemp -d" in steps and "/tmp/froster-" not in steps, steps
    os.unlink(folder + b"/data.bin")
    shutil.rmtree(os.fsdecode(folder + b"/small"))
    tmpdir = tmp_path / "tmpdir"  # mktemp -d makes its directory here (TMPDIR)
    tmpdir.mkdir()
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", steps], capture_output=True,
                       text=True, cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmpdir)})
    assert p.returncode == 0, p.stderr
    assert b"OK" in subprocess.run(["md5sum", "-c", "Froster.manifest.md5"], cwd=folder,
                                   capture_output=True).stdout
    assert open(folder + b"/small/odd 'name'.txt", "rb").read() == b"small"
    assert list(tmpdir.iterdir()) == []  # the private temporary directory is gone again
