"""What the local services share: free loopback ports, waiting for one to listen, errors."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class LocalStackError(RuntimeError):
    """A local service could not be found, started or stopped."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LocalStackError(f"process exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise LocalStackError(f"nothing listened on 127.0.0.1:{port} in time")
