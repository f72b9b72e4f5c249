"""Runs `jobsight serve` as a real process for the tests, and reads its /metrics."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from jobsight.devstack.localstack import free_port
from tests.support.paths import ROOT
from tests.support.scrape import Samples, parsed


class SidecarProcess:
    def __init__(self, database_url: str, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"sidecar-{self.port}.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "JOBSIGHT_HOST": "127.0.0.1",
            "JOBSIGHT_PORT": str(self.port),
            "JOBSIGHT_POLL_INTERVAL": "1s",
            "JOBSIGHT_COMMIT_LAG": "300ms",
            "JOBSIGHT_SOURCES": "jobs,pgqueue,postgres",
            "JOBSIGHT_LOG_LEVEL": "debug",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, file_limit: int | None = None) -> SidecarProcess:
        """Starts `jobsight serve`; with `file_limit`, under that RLIMIT_NOFILE (soft and hard)."""

        def limit_files() -> None:
            if file_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, file_limit))

        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobsight", "serve"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_files,  # only setrlimit, before exec
        )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str, accept: str = "") -> tuple[int, str]:
        headers = {"Accept": accept} if accept else {}
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(self.url + path, headers=headers) as response:
                return response.status, await response.text()

    async def listening(self, within: float = 20.0) -> SidecarProcess:
        """Waits until the sidecar answers /livez (open whatever its users)."""
        from tests.support.waiting import eventually

        async def up() -> bool:
            try:
                return (await self.get("/livez"))[0] == 200
            except (aiohttp.ClientError, OSError):
                return False

        await eventually(up, within, "the sidecar listening")
        return self

    async def scrape(self) -> Samples:
        status, text = await self.get("/metrics")
        assert status == 200, text
        return parsed(text)

    async def value(self, name: str, **labels: str) -> float | None:
        try:
            samples = await self.scrape()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None
        return samples.get(name, {}).get(tuple(sorted(labels.items())))

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]
