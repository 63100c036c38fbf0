"""A private OpenSSH server on 127.0.0.1 for the sftp tests (this module holds no tests).

Debian's ``openssh-server`` (in the Makefile's APT_PKGS) supplies ``/usr/sbin/sshd``; the
system's sshd and its config are never touched.  Everything lives in one temporary folder:
a generated host key, a client key pair, ``authorized_keys``, a config that listens on a free
high port of 127.0.0.1 and allows only that key for the account running the tests, and the
pid file.  ``rclone_config`` writes an rclone remote ``sftptest:`` for it (``key_file``,
``md5sum_command`` so verify gets md5 from the listing).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from s3server import free_port

SSHD = "/usr/sbin/sshd"


def sshd_missing() -> str | None:
    """None when a private sshd can be started here, else why not."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed (make setup installs Debian's openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed (openssh-client)"
    return None


class SSHServer:
    """``/usr/sbin/sshd -D`` as the current user on 127.0.0.1:<port>, keys in ``base``."""

    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.user = os.environ.get("USER") or _user()
        self.host_key = base / "host_ed25519"
        self.client_key = base / "client_ed25519"
        self.proc: subprocess.Popen | None = None
        self.log = base / "sshd.log"

    def start(self, timeout: float = 20) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                               check=True, stdin=subprocess.DEVNULL)
        auth = self.base / "authorized_keys"
        auth.write_bytes(self.client_key.with_suffix(".pub").read_bytes())
        os.chmod(auth, 0o600)
        conf = self.base / "sshd_config"
        conf.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {self.base / 'sshd.pid'}\nAuthorizedKeysFile {auth}\n"
            f"AllowUsers {self.user}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\n"
            "Subsystem sftp internal-sftp\nLogLevel VERBOSE\n")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sshd did not answer on 127.0.0.1:{self.port} in {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def rclone_config(self, path: Path, name: str = "sftptest") -> Path:
        """An rclone config with the remote ``name:`` for this server (no password: a key)."""
        path.write_text(
            f"[{name}]\ntype = sftp\nhost = 127.0.0.1\nport = {self.port}\nuser = {self.user}\n"
            f"key_file = {self.client_key}\nknown_hosts_file = {self.known_hosts()}\n"
            "shell_type = unix\nmd5sum_command = md5sum\nsha1sum_command = sha1sum\n")
        return path

    def known_hosts(self) -> Path:
        """This server's host key, so rclone checks it (not trust on first use)."""
        path = self.base / "known_hosts"
        kind, key = self.host_key.with_suffix(".pub").read_text().split()[:2]
        path.write_text(f"[127.0.0.1]:{self.port} {kind} {key}\n")
        return path


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
