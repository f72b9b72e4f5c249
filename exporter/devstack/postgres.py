"""A throwaway PostgreSQL: the system's server binaries (run as the `postgres` user when we are
root, since initdb refuses root), or the `pgserver` wheel where no binaries are installed."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jobsight.devstack.ports import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    LocalStackError,
    free_port,
)

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "jobsight"
# Throwaway clusters trade durability for speed; nothing in them outlives the stack.
# Fast and not crash-safe: a crash (pg_ctl stop -m immediate) loses commits already acknowledged.
_FAST_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")


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
    durable: bool = False  # True: PostgreSQL's crash-safe defaults (for crash tests), not fast ones
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
            + [f"-c {s}" for s in (() if self.durable else _FAST_SETTINGS)]
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

    def pause(self, *, immediate: bool = False) -> None:
        """Stops the server but keeps its data (system binaries only): an outage to test with.
        `immediate` stops it as a crash would (no checkpoint; recovery at the next start)."""
        if self._bindir is None or self._dir is None:
            raise LocalStackError("pause() needs the system-binaries backend")
        self._run(str(self._bindir / "pg_ctl"), "-D", str(self._dir / "data"), "-m",
                  "immediate" if immediate else "fast", "-w", "stop")  # fmt: skip

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

    @property
    def server_log(self) -> Path | None:
        """The server's log file (system binaries only; the pgserver wheel keeps its own)."""
        return self._dir / "server.log" if self._bindir is not None and self._dir else None

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
