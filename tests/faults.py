"""The fault campaign's parts (issue 12, item 4): an S3 endpoint that can go down, the faults,
and the invariants checked after a run.  The test is ``tests/test_fault_campaign.py``.

Why a TCP proxy in front of moto for the S3 outage: moto keeps its objects in memory, so
stopping moto itself loses every object, which no real S3 outage does.  Stopping the proxy
makes the endpoint refuse connections and cuts every transfer in flight, like a server that
went down and came back, while the objects stay.

Faults (each at a random moment chosen by the campaign's seeded RNG):

* ``kill9``: SIGKILL of one running archive task's Python process (found by its command line,
  which names the run directory and task index);
* ``requeue``: ``scontrol requeue`` of one running array task;
* ``s3``: the S3 endpoint stops for a few seconds, then comes back on the same port;
* ``change``: one file of a folder that is not archived yet is rewritten;
* ``full``: the state directory (a small tmpfs) is filled to the last byte for a few seconds.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FAULTS = ("kill9", "requeue", "s3", "change", "full")


class TcpProxy:
    """127.0.0.1:port -> 127.0.0.1:upstream; ``stop`` refuses and cuts, ``start`` resumes."""

    def __init__(self, upstream: int, port: int):
        self.upstream = upstream
        self.port = port
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(100):
            try:
                s.bind(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.1)
        else:
            # listen() on an unbound socket would pick a random port: S3 "down" for ever.
            s.close()
            raise RuntimeError(f"the S3 proxy cannot listen on 127.0.0.1:{self.port} again")
        s.listen(64)
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown first: close() alone leaves the socket listening while the accept
            # thread is blocked in accept() on it (the kernel holds it), so the port stays
            # taken and start() could not bind it again.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                up.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, up))
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._conns.discard(src)


@dataclass
class Tally:
    """What the campaign did and found; printed at the end."""

    seed: int
    injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTS, 0))
    folders: int = 0
    bytes: int = 0
    objects_checked: int = 0
    uploads_seen: int = 0
    purged_files: int = 0
    restored_folders: int = 0
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in self.injected.items())
        return (f"fault campaign: seed {self.seed}; faults injected {sum(self.injected.values())}"
                f" ({kinds}); folders {self.folders}; bytes {self.bytes}; remote objects "
                f"checked {self.objects_checked}; uploads seen {self.uploads_seen}; files "
                f"purged {self.purged_files}; folders restored {self.restored_folders}; "
                f"violations {len(self.violations)}")


def task_pids(run_dir: Path) -> dict[int, int]:
    """Running archive task processes of this run: task index -> pid (from /proc)."""
    out: dict[int, int] = {}
    want = str(run_dir).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"froster_slurm.jobs" in argv and b"archive" in argv and want in argv:
            try:
                out[int(argv[argv.index(want) + 1])] = int(entry)
            except (ValueError, IndexError):
                pass
    return out


def running_tasks(job: str) -> list[str]:
    p = subprocess.run(["squeue", "-h", "-r", "-j", job, "-t", "R", "-o", "%i"],
                       capture_output=True, text=True)
    return [t for t in p.stdout.split() if "_" in t]


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler to delete."""
    filler = directory / "filler.bin"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    for size in (4096, 1):  # the last partial chunk
        try:
            with open(filler, "ab") as f:
                while True:
                    f.write(b"\0" * size)
                    f.flush()
        except OSError:
            pass
    return filler


class Injector:
    """Applies one fault at a time to a running archive (see the module docstring)."""

    def __init__(self, rng: random.Random, tally: Tally, run_dir: Path, job: str,
                 proxy: TcpProxy, state_dir: Path, folders: list[bytes],
                 is_done: Callable[[int], bool], log: Callable[[str], None]):
        self.rng, self.tally, self.run_dir, self.job = rng, tally, run_dir, job
        self.proxy, self.state_dir, self.folders = proxy, state_dir, folders
        self.is_done, self.log = is_done, log

    def inject(self, kind: str) -> bool:
        """Apply ``kind``; False when it had no target at this moment (not counted)."""
        ok = getattr(self, f"_{kind}")()
        if ok:
            self.tally.injected[kind] += 1
        return ok

    def _kill9(self) -> bool:
        pids = task_pids(self.run_dir)
        if not pids:
            return False
        index = self.rng.choice(sorted(pids))
        try:
            os.kill(pids[index], signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.log(f"kill -9 task {index} (pid {pids[index]})")
        return True

    def _requeue(self) -> bool:
        tasks = running_tasks(self.job)
        if not tasks:
            return False
        task = self.rng.choice(sorted(tasks))
        p = subprocess.run(["scontrol", "requeue", task], capture_output=True, text=True)
        self.log(f"scontrol requeue {task}: rc {p.returncode} {p.stderr.strip()}")
        return p.returncode == 0

    def _s3(self) -> bool:
        down = self.rng.uniform(2.0, 5.0)
        self.log(f"S3 endpoint down for {down:.1f}s")
        self.proxy.stop()
        time.sleep(down)
        self.proxy.start()
        return True

    def _change(self) -> bool:
        candidates = [i for i in range(len(self.folders)) if not self.is_done(i)]
        if not candidates:
            return False
        i = self.rng.choice(candidates)
        files = sorted(n for n in os.listdir(self.folders[i])
                       if stat.S_ISREG(os.lstat(os.path.join(self.folders[i], n)).st_mode)
                       and not n.startswith(b"Froster.") and n != b"index.html")
        name = self.rng.choice(files)
        path = os.path.join(self.folders[i], name)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:  # same size, new bytes at a random place
            f.seek(self.rng.randrange(max(1, size)))
            f.write(self.rng.randbytes(16))
        self.log(f"changed {os.fsdecode(name)} in folder {i}")
        return True

    def _full(self) -> bool:
        filler = fill(self.state_dir)
        hold = self.rng.uniform(2.0, 4.0)
        self.log(f"state directory full for {hold:.1f}s")
        time.sleep(hold)
        filler.unlink()
        return True


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_path(path: bytes) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def record_of(folder: bytes) -> dict[str, Any]:
    with open(os.path.join(folder, b"Froster.archive.json"), "rb") as f:
        return json.loads(f.read())


def remote_key(record: dict[str, Any], bucket: str, name: str) -> str:
    """The S3 key of ``name`` (relative to the record's destination ``s3remote:bucket/...``)."""
    dest = record["destination"].split(":", 1)[1]
    assert dest.startswith(bucket + "/"), dest
    return dest[len(bucket) + 1:] + "/" + name


def check_remote_complete(client: Any, bucket: str, record: dict[str, Any],
                          tally: Tally) -> None:
    """Every object the record names is in the bucket with the recorded size and md5."""
    sizes = {e["object"]: (e["size"], e["md5"]) for e in record["entries"]
             if e["type"] == "file" and e.get("object")}
    sizes.update({b["name"]: (b["size"], b["md5"]) for b in record["bundles"]})
    for name, (size, md5) in sorted(sizes.items()):
        key = remote_key(record, bucket, name)
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as e:  # noqa: BLE001 - any failure to read it is the violation
            tally.violations.append(f"{key}: missing on the remote ({type(e).__name__})")
            continue
        tally.objects_checked += 1
        if len(body) != size or md5_bytes(body) != md5:
            tally.violations.append(f"{key}: size/md5 {len(body)}/{md5_bytes(body)} on the "
                                    f"remote, {size}/{md5} in the record")


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)).astimezone(UTC)
    except ValueError:
        return None


def check_no_double_upload(task_dir: Path, tally: Tally) -> None:
    """No object copied after the task's verify marker; none copied twice by a task whose
    folder did not change and whose verification never failed."""
    log = task_dir / "logs" / "upload.log"
    if not log.exists():
        return
    state = json.loads((task_dir / "state.json").read_text())
    verified_at = None
    markers = task_dir / "steps.json"  # every step's marker of the folder
    verify = json.loads(markers.read_text()).get("verify") if markers.exists() else None
    if verify:
        verified_at = _when(verify.get("done_at"))
    copies: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict) or not str(obj.get("msg", "")).startswith("Copied"):
            continue
        name = str(obj.get("object"))
        copies[name] = copies.get(name, 0) + 1
        tally.uploads_seen += 1
        when = _when(obj.get("time"))
        # the marker's time is in whole seconds: a copy counts as later from the next second
        if verified_at and when and (when - verified_at).total_seconds() >= 1:
            tally.violations.append(f"{task_dir}: {name} uploaded at {when}, after the task "
                                    f"was verified at {verified_at}")
    if state.get("source_changes") or state.get("verify_failures"):
        return  # changed content is uploaded again, rightly
    for name, n in sorted(copies.items()):
        if n > 1:
            tally.violations.append(f"{task_dir}: {name} uploaded {n} times")
