"""The sidecar's resident memory under the demo's load, over time (issue 21, target 4: <= 64 MB
with every source on, after an hour of load, not only at start).

One PostgreSQL and one Temporal dev server; in this process, the demo's workers on both engines
and its load (about 6 jobs/s with a few percent failing, runners/examples/demo_handlers.py); two
`jobsight serve` processes side by side, each its own instance (each leads and polls), with every
source on (jobs, pgqueue, pgboss, postgres, temporal), polling every 5 s as the demo's sidecar
does: one reads Temporal over its HTTP API (JOBSIGHT_TEMPORAL_HTTP_ADDRESS, no SDK), the other
over gRPC with the Temporal SDK. Each one's RSS is sampled every 10 s, and at the end each must
report every source up (a sidecar whose temporal source failed would be light for nothing). The
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

import aiohttp

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
TRANSPORTS = ("http", "grpc")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the demo's failing jobs are on purpose
    pg, temporal = LocalPostgres(), LocalTemporal()
    samples: dict[str, list[tuple[float, float]]] = {t: [] for t in TRANSPORTS}
    up: dict[str, dict[str, bool]] = {}
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
        os.environ["JOBSIGHT_TEMPORAL_TASK_QUEUES"] = "jobsight-demo"  # the sidecars' scope
        ports = {transport: free_port() for transport in TRANSPORTS}
        procs = {
            transport: start_sidecar(
                url,
                ports[transport],
                "jobs,pgqueue,pgboss,postgres,temporal",
                address,
                interval="5s",
                extra={
                    "JOBSIGHT_INSTANCE": f"memory-{transport}",
                    **(
                        {"JOBSIGHT_TEMPORAL_HTTP_ADDRESS": temporal.http_address}
                        if transport == "http"
                        else {}
                    ),
                },
            )
            for transport in TRANSPORTS
        }
        began = time.monotonic()
        try:
            while (elapsed := time.monotonic() - began) < args.minutes * 60:
                await asyncio.sleep(SAMPLE_EVERY_S)
                for transport, proc in procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"the {transport} sidecar exited with {proc.returncode}")
                    samples[transport].append((round(elapsed), round(rss_mb(proc.pid), 1)))
                if len(samples["http"]) % 30 == 0:
                    now = {t: s[-1][1] for t, s in samples.items()}
                    print(f"{elapsed / 60:.0f} min: {now} MB", flush=True)
            for transport, port in ports.items():
                up[transport] = await sources_up(port)
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(30)
            stop.set()
            await load
    finally:
        temporal.stop()
        pg.stop()
    result = {
        "benchmark": "sidecar_memory",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load": "the demo's workers and load (about 6 jobs/s, both engines), two sidecars side by "
        "side polling every 5 s with every source on, Temporal read over its HTTP API by one and "
        "over gRPC (the SDK) by the other",
        "minutes": args.minutes,
        "transports": {
            transport: {
                "summary": summarise(samples[transport]),
                "sources_up_at_end": up[transport],
                "samples_s_mb": samples[transport],
            }
            for transport in TRANSPORTS
        },
    }
    http = result["transports"]["http"]  # type: ignore[index]
    result["targets_met"] = {
        f"rss max <= {TARGET_MB:g} MB (Temporal over HTTP)": http["summary"]["rss_mb_max"]
        <= TARGET_MB
        and all(http["sources_up_at_end"].values()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({t: v["summary"] for t, v in result["transports"].items()}, indent=2))  # type: ignore[attr-defined]


def summarise(samples: list[tuple[float, float]]) -> dict[str, float]:
    values = [mb for _, mb in samples]
    last_tenth = values[-max(1, len(values) // 10) :]
    return {
        "rss_mb_first_minute_max": max(mb for t, mb in samples if t <= 60),
        "rss_mb_max": max(values),
        "rss_mb_last_tenth_median": statistics.median(last_tenth),
    }


async def sources_up(port: int) -> dict[str, bool]:
    """Each source's jobsight_source_up on the sidecar's /metrics."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    found = {}
    for line in text.splitlines():
        if line.startswith("jobsight_source_up{"):
            name = line.split('source="', 1)[1].split('"', 1)[0]
            found[name] = float(line.rsplit(" ", 1)[1]) == 1.0
    return found


if __name__ == "__main__":
    asyncio.run(main())
