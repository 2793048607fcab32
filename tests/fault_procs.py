"""Real processes for the fault tests, each private to one test and on its own loopback port:
Mosquitto (persistent), a PostgreSQL cluster, and the service itself (uvicorn in a child
process, so it can be SIGKILLed). Each can be stopped, killed and started again on the same
port; the SMTP server is :class:`tests.api.smtp_server.SmtpServer`.

Waiting is always polling with a deadline (:func:`wait_until`), never a bare sleep.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from telematics.mqtt import BrokerAddress
from tests.conftest import require_servers

REPO = Path(__file__).resolve().parents[1]
MOSQUITTO_BINARY = Path("/usr/sbin/mosquitto")
#: Service settings the parent's environment must not leak into a test's service.
_KEEP_FROM_PARENT = ("LASTMILE_CACHE_DIR",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def wait_until(
    what: str, done: Callable[[], bool], timeout_s: float = 30.0, interval_s: float = 0.05
) -> float:
    """Poll ``done`` until it is true; return the seconds it took, or fail naming ``what``."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"still waiting after {timeout_s} s for {what}")
        time.sleep(interval_s)
    return time.monotonic() - started


def unavailable(reason: str) -> NoReturn:
    """Skip saying why (fail instead when the CI requires every server)."""
    if require_servers():
        pytest.fail(reason)
    pytest.skip(reason)


def _stop(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 15
) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)


def _tail(path: Path, chars: int = 2_000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class Mosquitto:
    """Mosquitto with persistence on a fixed port: a stop (SIGTERM) writes its queued messages
    and persistent sessions to disk, and a start loads them again."""

    def __init__(self, directory: Path) -> None:
        if not MOSQUITTO_BINARY.exists():
            unavailable(f"no mosquitto binary at {MOSQUITTO_BINARY}")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        # As root Mosquitto would switch to the mosquitto user, who cannot write here.
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {directory.resolve()}/\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            f"{run_as}"
        )
        self.log = directory / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(MOSQUITTO_BINARY), "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        wait_until(
            f"mosquitto on port {self.port} ({_tail(self.log, 300)})",
            lambda: process.poll() is None and port_open(self.port),
            timeout_s=10,
        )

    def stop(self) -> None:
        """A clean stop: Mosquitto saves its state on SIGTERM."""
        if self.process is not None:
            _stop(self.process)
            self.process = None


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    """A throwaway PostgreSQL cluster (initdb, trust auth, loopback only) on a free port.

    As root it runs as the ``postgres`` user from a temporary folder that user owns (the
    server refuses to run as root)."""

    def __init__(self) -> None:
        bin_dir = _postgres_bin()
        if bin_dir is None:
            unavailable("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self.bin = bin_dir
        self.prefix: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="lastmile-faults-pg-"))
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root)
                unavailable("running as root and there is no postgres user to run PostgreSQL")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip

    def _run(self, tool: str, *args: str, timeout_s: float = 60) -> None:
        result = subprocess.run(
            [*self.prefix, str(self.bin / tool), *args],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-1500:]
            raise AssertionError(f"{tool} failed ({result.returncode}): {output}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class ServiceProcess:
    """The service in a child process (uvicorn, ``create_app`` from LASTMILE_* variables),
    started again with the same settings after a kill."""

    def __init__(self, directory: Path, env: Mapping[str, str], admin_key: str = "") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("LASTMILE_") or k in _KEEP_FROM_PARENT
        }
        self.env.update({"LASTMILE_DATA_DIR": str(directory / "data"), **env})
        self.log = directory / "service.log"
        self.admin_key = admin_key
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.client = httpx.Client(base_url=self.base_url, timeout=30)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def start(self, timeout_s: float = 60) -> float:
        """Start and wait until it answers /healthz; returns the seconds that took."""
        self.starts += 1
        command = [
            sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(
                    f"the service exited ({process.returncode}):\n{_tail(self.log)}"
                )
            try:
                return self.client.get("/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        return wait_until(f"the service on {self.base_url}", up, timeout_s=timeout_s)

    def ready(self) -> int:
        """/readyz's status code (0 when it does not answer)."""
        try:
            return self.client.get("/readyz", timeout=5).status_code
        except httpx.TransportError:
            return 0

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is flushed or acked."""
        if self.process is not None:
            _stop(self.process, signal.SIGKILL)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, signal.SIGTERM, timeout_s=30)
            self.process = None

    def close(self) -> None:
        self.stop()
        self.client.close()

    def log_text(self) -> str:
        return _tail(self.log, 20_000)
