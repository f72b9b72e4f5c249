"""`jobsight dev` (what `make run` starts): the whole demo comes up on embedded defaults, both
engines work the sample jobs, the sidecar reports them, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from jobsight.devstack.localstack import free_port
from tests.support.paths import ROOT
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import eventually


async def test_demo_runs_both_engines_and_stops_cleanly(tmp_path: Path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "JOBSIGHT_TEMPORAL_HTTP_ADDRESS")
    }
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, never waited on in the loop
        [sys.executable, "-m", "jobsight", "dev"],
        cwd=ROOT,
        env={**env, "JOBSIGHT_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    view = SidecarProcess("postgresql://unused", tmp_path)
    view.port = port
    try:

        async def both_engines_completed() -> bool:
            try:
                samples = await view.scrape()
            except Exception:
                return False
            runners = {
                labels
                for labels, value in samples.get("jobsight_jobs_completed_total", {}).items()
                if value > 0
            }
            return {dict(k)["runner"] for k in runners} == {"pgqueue", "temporal"}

        await eventually(both_engines_completed, 90, "jobs completed on both engines")
        samples = await view.scrape()
        up = samples["jobsight_source_up"]
        assert {dict(k)["source"]: v for k, v in up.items()} == {
            "jobs": 1,
            "pgqueue": 1,
            "pgboss": 1,
            "postgres": 1,
            "temporal": 1,
        }
        status, page = await view.get("/")
        assert status == 200 and "leader" in page
        output = (tmp_path / "demo.log").read_text()
        for where in ("status page", "console", "metrics", "temporal ui", "handlers"):
            assert where in output
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = (tmp_path / "demo.log").read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "stopped; nothing left behind." in output
    assert "Traceback" not in output
