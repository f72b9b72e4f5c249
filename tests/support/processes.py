"""The `jobsight` command as real processes: one-shot runs, and long-running ones (workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT


def jobsight(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, inherit: bool = True
) -> subprocess.CompletedProcess[str]:
    """Runs `python -m jobsight ARGS` to the end, from the repository (so that the tests'
    handler modules import), with the environment plus `env` (only `env`: inherit=False)."""
    base = dict(os.environ) if inherit else {}
    return subprocess.run(
        [sys.executable, "-m", "jobsight", *args],
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_jobsight(
    *args: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Starts `python -m jobsight ARGS` in the background, its output appended to `log` (or
    discarded), so that a failing test can show what the process said."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "jobsight", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        )
    finally:
        if not isinstance(out, int):
            out.close()


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> list[int]:
    """SIGTERM to every process, then their exit codes (a graceful stop exits 0)."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    return [proc.wait(timeout) for proc in procs]


def kill_leftovers(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL whatever is still running (a test's cleanup after a failure)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
