"""Every problem is reported and none aborts the crawl (errors file, summary, exit 3)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from froster_slurm.crawl import HEADER, crawl, errorlog, iter_rows, read_errors
from froster_slurm.crawl.builtin import CrawlOptions
from froster_slurm.crawl.driver import choose_engine
from froster_slurm.crawl.pwalk import stderr_to_errors

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path("/work/shared/samples/pwalk-sample.csv")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli(*args: str | bytes, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "froster_slurm", "crawl", *args],
                          capture_output=True, env=env(), timeout=120)


def paths_in(csv_path: Path) -> dict[bytes, list[bytes]]:
    return {r[3]: r for r in iter_rows(csv_path)}


def small_tree(root: Path) -> None:
    (root / "open" / "deeper").mkdir(parents=True)
    (root / "open" / "f.txt").write_bytes(b"abc")
    (root / "locked" / "inner").mkdir(parents=True)
    (root / "locked" / "secret.txt").write_bytes(b"s")
    for d in (root, root / "open", root / "open" / "deeper", root / "locked"):
        os.chmod(d, 0o755)


class ListedThen:
    """A scandir result read to the end first (names and types, no lstat yet), then ``act``.

    Deterministically opens the window pwalk and we both have between readdir and lstat.
    """

    def __init__(self, fd: int, path: bytes, act):
        with os.scandir(fd) as it:
            self.entries = list(it)
        act(path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return iter(self.entries)


def can_drop_dac() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


# Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH: mode 000 finally means "no" to uid 0 too.
NO_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search",
          "--inh-caps", "-dac_override,-dac_read_search")


@pytest.mark.skipif(not can_drop_dac(), reason="needs root and setpriv to provoke a real EACCES")
def test_unreadable_directory_real_eacces(tmp_path):
    root = tmp_path / "t"
    small_tree(root)
    os.chmod(root / "locked", 0)
    out = tmp_path / "c.csv"
    try:
        proc = cli(os.fsencode(root), "-o", str(out), "--engine", "builtin", "--workers", "2",
                   prefix=NO_DAC)
    finally:
        os.chmod(root / "locked", 0o755)
    assert proc.returncode == 3, proc.stderr
    assert b"1 errors" in proc.stdout and b"crawl incomplete" in proc.stderr
    problems = read_errors(str(out) + ".errors")
    assert [(p.kind, p.detail, p.path) for p in problems] == [
        (errorlog.UNREADABLE, "Permission denied", os.fsencode(root / "locked"))]
    rows = paths_in(out)
    locked = rows[os.fsencode(root / "locked")]  # pwalk would have no row at all
    assert locked[11] == b"0040000" and locked[15:] == [b"0", b"0"]
    assert os.fsencode(root / "open" / "f.txt") in rows
    assert not any(p.startswith(os.fsencode(root / "locked") + b"/") for p in rows)


def test_unreadable_directory_injected(tmp_path):
    root = tmp_path / "t"
    small_tree(root)
    locked = os.fsencode(root / "locked")

    def scandir(fd, path):
        if path == locked:
            raise PermissionError(13, "Permission denied", path)
        return os.scandir(fd)

    s = crawl([root], tmp_path / "c.csv", engine="builtin", workers=1, scandir=scandir)
    assert s.errors == 1 and not s.complete
    assert read_errors(s.errors_path)[0].kind == errorlog.UNREADABLE
    assert paths_in(s.output)[locked][15:] == [b"0", b"0"]
    with pytest.raises(Exception) as e:
        s.raise_if_incomplete()
    assert getattr(e.value, "exit_code", None) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_file_vanishing_between_listing_and_lstat(tmp_path, workers):
    root = tmp_path / "t"
    small_tree(root)
    victim = os.fsencode(root / "open" / "f.txt")
    open_dir = os.fsencode(root / "open")

    def scandir(fd, path):
        return ListedThen(fd, path, lambda p: os.unlink(victim) if p == open_dir else None)

    s = crawl([root], tmp_path / "c.csv", engine="builtin", workers=workers, scandir=scandir)
    assert s.errors == 1
    [problem] = read_errors(s.errors_path)
    assert (problem.kind, problem.path) == (errorlog.VANISHED, victim)
    rows = paths_in(s.output)
    assert victim not in rows
    # pwalk's counting: the listed entry counts, its size (unknown) does not.
    assert rows[open_dir][15] == b"2"
    assert int(rows[open_dir][16]) == os.lstat(root / "open" / "deeper").st_size


def test_directory_vanishing_before_it_is_read(tmp_path):
    root = tmp_path / "t"
    small_tree(root)
    doomed = os.fsencode(root / "open" / "deeper")

    def scandir(fd, path):
        if path == doomed:
            raise FileNotFoundError(2, "No such file or directory", path)
        return os.scandir(fd)

    s = crawl([root], tmp_path / "c.csv", engine="builtin", workers=1, scandir=scandir)
    assert [(p.kind, p.path) for p in read_errors(s.errors_path)] == [
        (errorlog.VANISHED, doomed)]
    assert doomed not in paths_in(s.output)


def test_symlink_loops_are_not_followed(tmp_path):
    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    os.symlink(".", root / "d" / "self")
    os.symlink("..", root / "d" / "up")
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    s = crawl([root], tmp_path / "c.csv", engine="builtin", workers=2)
    assert s.errors == 0 and s.entries == 6
    rows = paths_in(s.output)
    for name in ("d/self", "d/up", "a", "b"):
        assert rows[os.fsencode(root / name)][11] == b"0120777"


def run_in_mount_namespace(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a private mount namespace: its mounts vanish with the process."""
    script = tmp_path / "ns.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                           str(script)], capture_output=True, text=True, env=env(), timeout=120)


def can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not can_mount(), reason="needs root and unshare to mount")
def test_one_file_system_reports_each_mount_point(tmp_path):
    root = tmp_path / "t"
    (root / "mnt").mkdir(parents=True)
    (root / "here.txt").write_bytes(b"1")
    proc = run_in_mount_namespace(f"""
        import os, subprocess, sys
        from froster_slurm.crawl import crawl, CrawlOptions
        root = {str(root)!r}
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", root + "/mnt"], check=True)
        open(root + "/mnt/inside.txt", "w").write("x")
        a = crawl([root], {str(tmp_path / "all.csv")!r}, engine="builtin", workers=1)
        x = crawl([root], {str(tmp_path / "x.csv")!r}, engine="builtin", workers=2,
                  options=CrawlOptions(one_file_system=True))
        print(a.errors, a.skipped, x.errors, x.skipped, x.complete)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    # reported, but skipped on request: the crawl is complete (D9)
    assert proc.stdout.split() == ["0", "0", "0", "1", "True"]
    mnt = os.fsencode(root / "mnt")
    assert mnt + b"/inside.txt" in paths_in(tmp_path / "all.csv")
    crossed = paths_in(tmp_path / "x.csv")
    assert mnt not in crossed and mnt + b"/inside.txt" not in crossed
    assert os.fsencode(root / "here.txt") in crossed
    assert [(p.kind, p.path) for p in read_errors(str(tmp_path / "x.csv") + ".errors")] == [
        (errorlog.OTHER_FS, mnt)]
    assert crossed[os.fsencode(root)][15] == b"2"  # pwalk: counted, not summed, not crossed


@pytest.mark.skipif(not can_mount(), reason="needs root and unshare to mount")
def test_bind_mount_loop_is_reported_not_followed(tmp_path):
    root = tmp_path / "t"
    (root / "sub" / "loop").mkdir(parents=True)
    (root / "sub" / "f").write_bytes(b"")
    proc = run_in_mount_namespace(f"""
        import subprocess
        from froster_slurm.crawl import crawl
        root = {str(root)!r}
        subprocess.run(["mount", "--bind", root, root + "/sub/loop"], check=True)
        s = crawl([root], {str(tmp_path / "c.csv")!r}, engine="builtin", workers=2)
        print(s.entries, s.errors)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["3", "1"]  # t, t/sub, t/sub/f
    [problem] = read_errors(str(tmp_path / "c.csv") + ".errors")
    assert (problem.kind, problem.path) == (errorlog.LOOP, os.fsencode(root / "sub" / "loop"))


def test_worker_bug_fails_loudly_without_hanging(tmp_path):
    root = tmp_path / "t"
    small_tree(root)
    bad = os.fsencode(root / "open")

    def scandir(fd, path):
        if path == bad:
            raise ValueError("a bug in the engine")
        return os.scandir(fd)

    with pytest.raises(RuntimeError, match="a bug in the engine"):
        crawl([root], tmp_path / "c.csv", engine="builtin", workers=2, scandir=scandir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no output under a final name


def test_errors_file_keeps_exact_path_bytes(tmp_path):
    paths = [b"/a/new\nline", b"/back\\slash\\n", b"/caf\xe9\ttab", b"/cr\rx"]
    f = tmp_path / "e"
    f.write_bytes(b"".join(errorlog.error_line(errorlog.LSTAT, "Input/output\terror", p)
                           for p in paths))
    assert f.read_bytes().count(b"\n") == len(paths)
    assert [(p.kind, p.detail, p.path) for p in read_errors(f)] == [
        (errorlog.LSTAT, "Input/output error", p) for p in paths]


def test_pwalk_stderr_becomes_errors_lines():
    stderr = (b"Locked Dir: /data/lab/proj/secret\n"
              b"threadID=3,rdepth=1 lstat: 'No such file or directory' /data/lab/proj/gone\n"
              b"threadID=3,rdepth=1 lstat: 'Input/output error' /data/lab/proj/bad\n"
              b"msg=lstat error,threadID=1,rdepth=0,file=/data/old pwalk\n"
              b"Bad File: /data/lab/proj/raw/tab\tname\n"
              b"Bad File: /data/lab/proj/new\nline\n"
              b"unable to setuid root; not all files will be processed\n"
              b"something else\n")
    got = [(p.kind, p.path) for p in _parse(stderr_to_errors(stderr))]
    assert got == [
        (errorlog.UNREADABLE, b"/data/lab/proj/secret"),
        (errorlog.VANISHED, b"/data/lab/proj/gone"),
        (errorlog.LSTAT, b"/data/lab/proj/bad"),
        (errorlog.LSTAT, b"/data/old pwalk"),
        (errorlog.NAME_MANGLED, b"/data/lab/proj/raw/tab\tname"),
        (errorlog.NAME_MANGLED, b"/data/lab/proj/new\nline"),
        (errorlog.PWALK, b"something else"),
    ]


def _parse(lines: list[bytes]):
    import tempfile
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"".join(lines))
        f.flush()
        return read_errors(f.name)


def fake_pwalk(bindir: Path, tmp_path: Path) -> Path:
    """Stands in for pwalk (not packaged for Debian): replays the real sample and its stderr."""
    bindir.mkdir()
    exe = bindir / "pwalk"
    exe.write_text(f"""#!{sys.executable}
import sys
open({str(tmp_path / "argv")!r}, "w").write(repr(sys.argv[1:]))
data = open({str(SAMPLE)!r}, "rb").read().split(b"\\n", 1)[1]
sys.stdout.buffer.write(data)
root = sys.argv[-1].encode()
sys.stderr.buffer.write(b"Locked Dir: " + root + b"/secret\\n"
                        b"Bad File: " + root + b"/raw/tab\\tname\\n")
""")
    exe.chmod(0o755)
    return exe


def test_pwalk_engine_adapter(tmp_path, monkeypatch):
    fake_pwalk(tmp_path / "bin", tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "root").mkdir()
    opts = CrawlOptions(one_file_system=True)
    from froster_slurm.crawl import compiled
    if compiled.available():  # the faster compiled walker wins over a pwalk on PATH
        assert choose_engine("auto", [b"x"], opts) == "builtin"
    monkeypatch.setattr(compiled, "available", lambda: False)  # where it could not build
    assert choose_engine("auto", [b"x"], opts) == "pwalk"
    assert choose_engine("auto", [b"x"], CrawlOptions(excludes=("*.tmp",))) == "builtin"
    assert choose_engine("auto", [b"-x"], opts) == "builtin"
    s = crawl([tmp_path / "root"], tmp_path / "c.csv", engine="auto", options=opts)
    assert s.engine == "pwalk"
    assert (s.entries, s.directories, s.errors) == (11, 3, 2)
    assert (tmp_path / "c.csv").read_bytes() == SAMPLE.read_bytes()  # header + pwalk's rows
    assert eval((tmp_path / "argv").read_text()) == [
        "--NoSnap", "--one-file-system", str(tmp_path / "root")]
    assert [p.kind for p in read_errors(s.errors_path)] == [errorlog.UNREADABLE,
                                                            errorlog.NAME_MANGLED]


def test_pwalk_engine_refuses_what_it_cannot_do(tmp_path, monkeypatch):
    from froster_slurm.errors import NotFoundError, UserError
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(NotFoundError):
        choose_engine("pwalk", [b"x"], CrawlOptions())
    assert choose_engine("auto", [b"x"], CrawlOptions()) == "builtin"
    fake_pwalk(tmp_path / "bin", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(UserError, match="--exclude"):
        choose_engine("pwalk", [b"x"], CrawlOptions(excludes=("*.o",)))


def test_exclude_and_snapshots(tmp_path):
    root = tmp_path / "t"
    for d in ("keep", ".snapshot/old", "build/obj", "src/.zfs"):
        (root / d).mkdir(parents=True)
    (root / "keep" / "a.tmp").write_bytes(b"12")
    (root / "keep" / "b.dat").write_bytes(b"1")
    s = crawl([root], tmp_path / "c.csv", engine="builtin", workers=1,
              options=CrawlOptions(excludes=("*.tmp", "*/t/build")))
    rows = paths_in(s.output)
    b = os.fsencode(root)
    assert set(rows) == {b, b + b"/keep", b + b"/keep/b.dat", b + b"/src"}
    assert rows[b + b"/keep"][15:] == [b"2", b"3"]  # what is on disk, like pwalk
    assert s.errors == 0  # skipped by request, not a problem
    s2 = crawl([root], tmp_path / "d.csv", engine="builtin", workers=1,
               options=CrawlOptions(no_snapshots=False))
    assert b + b"/.snapshot/old" in paths_in(s2.output)


def test_output_has_header_even_when_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    s = crawl([tmp_path / "empty"], tmp_path / "c.csv", engine="builtin", workers=2)
    assert s.entries == 1
    assert (tmp_path / "c.csv").read_bytes().startswith(HEADER)
    assert (tmp_path / "c.csv.errors").read_bytes() == b""


@pytest.mark.skipif(not can_mount(), reason="needs root and unshare to mount")
def test_full_disk_stops_the_crawl_it_is_not_a_tree_problem(tmp_path):
    root = tmp_path / "t"
    for i in range(40):
        (root / f"d{i}").mkdir(parents=True)
        for j in range(40):
            (root / f"d{i}" / f"file-with-a-longish-name-{j}.dat").write_bytes(b"")
    proc = run_in_mount_namespace(f"""
        import os, subprocess
        from froster_slurm.crawl import crawl
        from froster_slurm.crawl.builtin import OutputError
        small = {str(tmp_path / "small")!r}
        os.mkdir(small)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", small], check=True)
        for workers in (1, 2):
            try:
                crawl([{str(root)!r}], small + "/c.csv", engine="builtin", workers=workers)
                print("no error")
            except OutputError as e:
                print(e.exit_code, e, sorted(os.listdir(small)))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:  # exit code 70, the reason, and nothing left behind
        assert line.startswith("70 cannot write the crawl output"), line
        assert line.endswith(": No space left on device []"), line


class SwapAfterListing:
    """Yields the real entries; right after the walker has seen ``victim`` (and lstat'ed it
    as a directory), replaces that directory with a symlink to ``target``."""

    def __init__(self, fd: int, path: bytes, victim: bytes, target: bytes):
        with os.scandir(fd) as it:
            self.entries = list(it)
        self.path, self.victim, self.target = path, victim, target

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        for e in self.entries:
            yield e
            if self.path + b"/" + os.fsencode(e.name) == self.victim:
                os.rename(self.victim, self.victim + b".moved")
                os.symlink(self.target, self.victim)


@pytest.mark.parametrize("workers", [1, 2])
def test_directory_swapped_for_a_symlink_is_not_followed(tmp_path, workers):
    root = tmp_path / "t"
    (root / "victim").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "not-ours.txt").write_bytes(b"")
    broot, victim = os.fsencode(root), os.fsencode(root / "victim")

    def scandir(fd, path):
        if path == broot:
            return SwapAfterListing(fd, path, victim, os.fsencode(tmp_path / "elsewhere"))
        return os.scandir(fd)

    s = crawl([root], tmp_path / "c.csv", engine="builtin", workers=workers, scandir=scandir)
    [problem] = read_errors(s.errors_path)
    assert (problem.kind, problem.detail, problem.path) == (
        errorlog.VANISHED, "replaced by a symlink, not followed", victim)
    assert not any(b"not-ours" in p for p in paths_in(s.output))
