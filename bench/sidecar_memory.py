"""The sidecar's resident memory under the demo's load, over time (issue 21, target 4: <= 64 MB
with every source on, after an hour of load, not only at start).

One PostgreSQL and one Temporal dev server; in this process, the demo's workers on both engines
and its load (about 6 jobs/s with a few percent failing, runners/examples/demo_handlers.py); in
its own process, `jobsight serve` with every source on (jobs, pgqueue, pgboss, postgres,
temporal), polling every 5 s as the demo's sidecar does. Its RSS is sampled every 10 s; the
console is not browsed (a sidecar nobody browses is the common case; a browsed one also loads
Jinja2).

Usage: python -m bench.sidecar_memory [--minutes M]
Writes bench/results/sidecar_memory.json and prints the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path

from bench.poll_cost import rss_mb, start_sidecar
from jobsight.devstack.demo import Demo
from jobsight.devstack.localstack import LocalPostgres, free_port
from jobsight.devstack.temporal import LocalTemporal
from jobsight.runners import migrator
from jobsight.settings import SidecarSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "sidecar_memory.json"
SAMPLE_EVERY_S = 10.0
TARGET_MB = 64.0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the demo's failing jobs are on purpose
    pg, temporal = LocalPostgres(), LocalTemporal()
    samples: list[tuple[float, float]] = []
    try:
        url, address = pg.start(), temporal.start()
        import asyncpg

        conn = await asyncpg.connect(url)
        await migrator.migrate(conn, "up")
        await conn.close()
        settings = SidecarSettings(
            database_url=url, temporal_address=address, temporal_task_queues=("jobsight-demo",)
        )
        stop = asyncio.Event()
        load = asyncio.create_task(Demo(settings, temporal=True, sidecar=False).run(stop))
        os.environ["JOBSIGHT_TEMPORAL_TASK_QUEUES"] = "jobsight-demo"  # the sidecar's scope
        proc = start_sidecar(url, free_port(), "jobs,pgqueue,pgboss,postgres,temporal", address,
                             interval="5s")  # fmt: skip
        began = time.monotonic()
        try:
            while (elapsed := time.monotonic() - began) < args.minutes * 60:
                await asyncio.sleep(SAMPLE_EVERY_S)
                if proc.poll() is not None:
                    raise RuntimeError(f"the sidecar exited with {proc.returncode}")
                samples.append((round(elapsed), round(rss_mb(proc.pid), 1)))
                if len(samples) % 30 == 0:
                    print(f"{elapsed / 60:.0f} min: {samples[-1][1]} MB", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
            stop.set()
            await load
    finally:
        temporal.stop()
        pg.stop()
    values = [mb for _, mb in samples]
    last_tenth = values[-max(1, len(values) // 10) :]
    summary = {
        "rss_mb_first_minute_max": max(mb for t, mb in samples if t <= 60),
        "rss_mb_max": max(values),
        "rss_mb_last_tenth_median": statistics.median(last_tenth),
    }
    result = {
        "benchmark": "sidecar_memory",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load": "the demo's workers and load (about 6 jobs/s, both engines), sidecar polling "
        "every 5 s with every source on",
        "minutes": args.minutes,
        "samples_s_mb": samples,
        "summary": summary,
        "targets_met": {f"rss max <= {TARGET_MB:g} MB": summary["rss_mb_max"] <= TARGET_MB},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
