"""Runs `jobsight serve` as a real process for the tests, and reads its /metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from jobsight.devstack.localstack import free_port

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]
ROOT = Path(__file__).resolve().parent.parent


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

    def start(self) -> SidecarProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobsight", "serve"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
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

    async def scrape(self) -> Samples:
        status, text = await self.get("/metrics")
        assert status == 200, text
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = tuple(sorted(sample.labels.items()))
                samples.setdefault(sample.name, {})[key] = sample.value
        return samples

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


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float, what: str = "condition"
) -> float:
    """Waits until check() is true; returns the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        if await check():
            return time.monotonic() - began
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not met within {within} s")
