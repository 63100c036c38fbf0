"""``crawl()``: pick the engine, check the roots, write the output and the errors file.

The output appears under its final name only when the crawl ran to the end (it is written as
``OUT.part`` and renamed), so a file named like a crawl is a whole crawl; the errors file is
always written, empty when nothing went wrong, so "no problems" is a statement, not an absence.
A crawl with problems still returns normally: the caller shows the summary and then decides
(the CLI raises ``IncompleteError``, exit 3).
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import IncompleteError, NotFoundError, UserError
from ..util.paths import display
from . import compiled
from . import pwalk as pwalk_engine
from .builtin import (
    Counts,
    CrawlOptions,
    OutputError,
    Progress,
    Scandir,
    ScanItem,
    default_workers,
    scandir_fd,
    walk,
)
from .pwalkcsv import HEADER

ENGINES = ("auto", "builtin", "pwalk")
BUFFER = 1 << 20


@dataclass(frozen=True)
class CrawlSummary:
    """What a crawl (or one shard of it) did; ``line()`` is what people see."""

    output: Path
    errors_path: Path
    engine: str
    entries: int
    directories: int
    errors: int
    seconds: float
    skipped: int = 0  # mount points not crossed on request: in the errors file, not problems
    walker: str = ""  # builtin engine: "c" (compiled) or "python"

    @property
    def complete(self) -> bool:
        return self.errors == 0

    def line(self) -> str:
        rate = self.entries / self.seconds if self.seconds > 0 else 0.0
        text = (f"crawled {self.entries:,} entries ({self.directories:,} directories) in "
                f"{self.seconds:.1f} s, {rate:,.0f} entries/s, {self.errors:,} errors "
                f"[{self.engine}{'/' + self.walker if self.walker else ''}] -> {self.output}")
        if self.skipped:
            text += f", {self.skipped:,} mount point(s) not crossed"
        if self.errors:
            text += f"; problems listed in {self.errors_path}"
        elif self.skipped:
            text += f"; listed in {self.errors_path}"
        return text

    def __str__(self) -> str:
        return self.line()

    def raise_if_incomplete(self) -> None:
        if self.errors:
            raise IncompleteError(f"crawl incomplete: {self.errors:,} problem(s), one per line "
                                  f"in {self.errors_path}")

    def to_json(self) -> dict[str, object]:
        return {"output": str(self.output), "errors_path": str(self.errors_path),
                "engine": self.engine, "entries": self.entries,
                "directories": self.directories, "errors": self.errors,
                "skipped": self.skipped, "walker": self.walker,
                "seconds": round(self.seconds, 3)}


def root_item(root: bytes) -> ScanItem:
    """A crawl root, checked up front so a typo fails at once rather than as an empty crawl.

    Like pwalk, the root's row comes from ``lstat`` and its contents from ``opendir``, so a
    root that is a symlink to a directory is crawled through (nothing below it is followed).
    """
    try:
        st = os.lstat(root)
    except FileNotFoundError as e:
        raise NotFoundError(f"crawl root not found: {display(root)}") from e
    except OSError as e:
        raise UserError(f"crawl root {display(root)}: {e.strerror}") from e
    if not stat.S_ISDIR(st.st_mode) and not (stat.S_ISLNK(st.st_mode) and os.path.isdir(root)):
        raise UserError(f"crawl root is not a directory: {display(root)}")
    return ScanItem(root, 0, 0, st, st.st_dev)


def choose_engine(engine: str, roots: Sequence[bytes], options: CrawlOptions) -> str:
    """``auto``: builtin with its compiled walker (measured 1.57x pwalk's entries/s, README
    "Performance"); pwalk only where that walker could not be built (pure Python is slower
    than pwalk), pwalk is on PATH and it can do exactly this crawl; else builtin."""
    if engine not in ENGINES:
        raise UserError(f"unknown crawl engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "builtin":
        return engine
    exe = pwalk_engine.find_pwalk()
    why = pwalk_engine.unsupported(list(roots), options)
    if engine == "pwalk":
        if not exe:
            raise NotFoundError("--engine pwalk: no pwalk on PATH (use --engine builtin)")
        if why:
            raise UserError(f"--engine pwalk cannot do this crawl: {why}")
        return engine
    if compiled.available():
        return "builtin"
    return "pwalk" if exe and not why else "builtin"


@contextmanager
def output_files(out: Path, errors_path: Path) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """Open ``out`` (header written) and the errors file as ``.part``; rename both on success."""
    part = out.with_name(out.name + ".part")
    err_part = errors_path.with_name(errors_path.name + ".part")
    files: list[BinaryIO] = []
    ok = False
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            files.append(open(part, "wb", buffering=BUFFER))
            files.append(open(err_part, "wb"))
            files[0].write(HEADER)
        except OSError as e:
            raise OutputError(f"cannot write the crawl output {out}: {e.strerror}") from e
        yield files[0], files[1]
        try:
            for f in files:
                f.close()  # the last buffered block is written here: may be the one that fails
            os.replace(err_part, errors_path)
            os.replace(part, out)
        except OSError as e:
            raise OutputError(f"cannot write the crawl output {out}: {e.strerror}") from e
        ok = True
    finally:
        if not ok:
            for f in files:
                with contextlib.suppress(OSError):
                    f.close()
            for p in (part, err_part):
                with contextlib.suppress(OSError):
                    p.unlink()


def resolve_workers(workers: int) -> int:
    if workers < 0:
        raise UserError(f"--workers must be 0 (one per core) or more, not {workers}")
    return workers or default_workers()


def run_builtin(items: list[ScanItem], out: BinaryIO, err: BinaryIO, options: CrawlOptions,
                workers: int, threads: int, progress: Progress | None,
                scandir: Scandir) -> tuple[Counts, str]:
    """The builtin engine with its compiled walker when it can, else the Python one.

    ``workers`` as given (0: the default).  Returns the counts and the walker used.
    """
    n_workers = resolve_workers(workers)
    if threads < 1:
        raise UserError(f"--threads must be 1 or more, not {threads}")
    if compiled.chosen_walker(options, scandir is not scandir_fd) == "c":
        return compiled.walk_compiled(items, out, err, options,
                                      compiled.default_threads(workers, threads),
                                      progress), "c"
    return walk(items, out, err, options, n_workers, threads, progress, scandir), "python"


def crawl(roots: Sequence[str | bytes | os.PathLike], out: str | os.PathLike, *,
          engine: str = "auto", workers: int = 0, threads: int = 1,
          options: CrawlOptions | None = None, errors_path: str | os.PathLike | None = None,
          progress: Progress | None = None, scandir: Scandir = scandir_fd) -> CrawlSummary:
    """Crawl ``roots`` into one pwalk CSV ``out`` (header first) and ``out + ".errors"``.

    ``workers`` processes (0: one per CPU we may use) x ``threads`` walker threads each;
    ``progress(entries, directories, errors)`` is called about twice a second.
    """
    options = options or CrawlOptions()
    if not roots:
        raise UserError("nothing to crawl: give at least one folder")
    if threads < 1:
        raise UserError(f"--threads must be 1 or more, not {threads}")
    broots = [os.fsencode(r) for r in roots]
    if any(not r for r in broots):
        raise UserError("an empty path is not a folder to crawl")
    items = [root_item(r) for r in broots]
    chosen = choose_engine(engine, broots, options)
    out = Path(os.fsdecode(os.fsencode(out)))
    errors_path = Path(errors_path) if errors_path else out.with_name(out.name + ".errors")
    start = time.monotonic()
    walker = ""
    with output_files(out, errors_path) as (fo, fe):
        if chosen == "pwalk":
            exe = pwalk_engine.find_pwalk()
            assert exe is not None
            counts = Counts()
            for root in broots:
                counts.add(pwalk_engine.run_pwalk(exe, root, fo, fe, options, progress,
                                                  base=counts))
        else:
            counts, walker = run_builtin(items, fo, fe, options, workers, threads, progress,
                                         scandir)
    return CrawlSummary(out, errors_path, chosen, counts.entries, counts.directories,
                        counts.errors, time.monotonic() - start, counts.skipped, walker)
