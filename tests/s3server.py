"""A real S3-compatible server for tests: moto's server on 127.0.0.1, plus an rclone config.

Why a helper and not a fixture only: several test modules (archive, restore, purge) need the
same server, and the outage test must stop and restart it on the SAME port so rclone's config
stays valid.  moto keeps its state in memory, so a restart loses every object; ``start()``
recreates the bucket each time.

Known traps (docs: DESIGN.md): ``provider = Other`` with path-style addressing (``AWS`` forces
virtual-host names that hang in DNS), ``--s3-no-head`` avoids moto's 400 on ``HEAD
?versionId=null`` after a multipart upload, and ``AWS_CA_BUNDLE`` must not reach rclone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCESS_KEY = "froster-test-access"
SECRET_KEY = "froster-test-secret"
REGION = "us-east-1"
REMOTE = "s3test"
# Flags every test run needs against moto (see the module docstring).
RCLONE_TEST_FLAGS = ["--s3-no-head"]


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """moto's S3 server as a child process on a fixed port; stop()/start() keep the port."""

    def __init__(self, workdir: Path, bucket: str = "froster-test", port: int | None = None,
                 python: str = sys.executable):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bucket = bucket
        self.port = port or free_port()
        self.python = python
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "moto.log"
        self.rclone_config = self.workdir / "rclone.conf"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def remote(self) -> str:
        """The rclone remote that points at the test bucket (``s3test:BUCKET``)."""
        return f"{REMOTE}:{self.bucket}"

    def write_rclone_config(self) -> Path:
        self.rclone_config.write_text(
            f"[{REMOTE}]\n"
            "type = s3\n"
            "provider = Other\n"
            "env_auth = false\n"
            f"access_key_id = {ACCESS_KEY}\n"
            f"secret_access_key = {SECRET_KEY}\n"
            f"region = {REGION}\n"
            f"endpoint = {self.endpoint}\n"
            "force_path_style = true\n"
        )
        return self.rclone_config

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (if not running), wait until it answers, create the bucket."""
        if self.proc is not None and self.proc.poll() is None:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(
            [self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}; "
                                   f"see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1).read()
                break
            except urllib.error.HTTPError:
                break  # it answered, even if with an error page
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer on {self.endpoint}") from None
                time.sleep(0.1)
        self.client().create_bucket(Bucket=self.bucket)
        self.write_rclone_config()

    def stop(self) -> None:
        """Stop the server (its objects are lost: moto keeps them in memory)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def client(self):
        """A boto3 S3 client for assertions (storage class, object listing)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CephRGW:
    """The Ceph RGW that ``scripts/ceph-rgw.sh`` runs on 127.0.0.1: a real S3 implementation
    (multipart, sizes, ETags as a production server makes them) beside moto's Glacier model.

    ``ensure_up`` starts it when it is not running (idempotent; ~17-30 s cold), so ``make test``
    and a test run alone both get it; it raises (the test fails) when it cannot start.
    """

    REMOTE = "rgw"

    def __init__(self, workdir: Path, bucket: str):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bucket = bucket
        self.script = Path(__file__).resolve().parent.parent / "scripts" / "ceph-rgw.sh"
        self.rclone_config = self.workdir / "rgw-rclone.conf"
        self.env: dict[str, str] = {}

    def ensure_up(self) -> None:
        if subprocess.run(["bash", str(self.script), "status"], capture_output=True
                          ).returncode != 0:
            p = subprocess.run(["bash", str(self.script), "up"], capture_output=True,
                               text=True, timeout=300)
            if p.returncode != 0:
                raise RuntimeError(f"scripts/ceph-rgw.sh up failed:\n{p.stderr[-3000:]}")
        out = subprocess.run(["bash", str(self.script), "env"], capture_output=True,
                             text=True, check=True).stdout
        self.env = dict(line.split("=", 1) for line in out.split())
        self.rclone_config.write_text(
            f"[{self.REMOTE}]\ntype = s3\nprovider = Ceph\nenv_auth = false\n"
            f"access_key_id = {self.env['FROSTER_TESTRGW_ACCESS_KEY']}\n"
            f"secret_access_key = {self.env['FROSTER_TESTRGW_SECRET_KEY']}\n"
            f"endpoint = {self.endpoint}\nforce_path_style = true\n")
        c = self.client()
        try:
            c.create_bucket(Bucket=self.bucket)
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass

    @property
    def endpoint(self) -> str:
        return self.env["FROSTER_TESTRGW_ENDPOINT"]

    @property
    def remote(self) -> str:
        return f"{self.REMOTE}:{self.bucket}"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint,
                            aws_access_key_id=self.env["FROSTER_TESTRGW_ACCESS_KEY"],
                            aws_secret_access_key=self.env["FROSTER_TESTRGW_SECRET_KEY"],
                            region_name="default")

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys
