"""Endpoint latency of the health gateway under load, while the poller runs.

A sidecar (every source but Temporal, polling every second) watches a database with live work:
50 job names x every unfinished status x 2 runners, and finished jobs in the triggers' windows.
wrk on loopback sends a paced load of about 500 requests/s (5 connections, each waiting about
9 ms between requests by wrk's delay() hook) to /readyz, then to /verdict, for 20 s each.

Targets at 500 requests/s: p99 <= 5 ms for /readyz (issue 6), <= 2 ms for /verdict (issue 21:
it serves the stored verdict's JSON bytes).

Usage: python -m bench.endpoints [--seconds S] [--rate R]
Writes bench/results/endpoints.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path

import asyncpg

from bench import wrk
from bench.poll_cost import live_work, start_sidecar
from jobsight.devstack.localstack import LocalPostgres, free_port
from jobsight.runners import migrator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "endpoints.json"
CONNECTIONS = 5


def paced(url: str, seconds: int, rate: int) -> dict[str, float]:
    # Each connection waits, then sends: aim the wait so that wait + a ~1 ms answer meets the rate.
    pause_ms = max(0.0, 1000 * CONNECTIONS / rate - 1.0)
    return wrk.run(url, connections=CONNECTIONS, seconds=seconds, pause_ms=pause_ms)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=500)
    args = parser.parse_args()
    pg = LocalPostgres()
    url = os.environ.get("DATABASE_URL") or pg.start()
    try:
        conn = await asyncpg.connect(url)
        await migrator.migrate(conn, "up")
        await conn.execute("TRUNCATE jobs CASCADE")
        await live_work(conn)
        await conn.close()
        port = free_port()
        proc = start_sidecar(url, port, "jobs,pgqueue,pgboss,postgres", None, interval="1s")
        try:
            await asyncio.sleep(5)
            results = {}
            for path in ("/readyz", "/verdict"):
                results[path] = await asyncio.to_thread(
                    paced, f"http://127.0.0.1:{port}{path}", args.seconds, args.rate
                )
                print(path, json.dumps(results[path]), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        pg.stop()
    limits = {"/readyz": 5.0, "/verdict": 2.0}
    targets = {f"{p} p99 <= {limits[p]:g} ms": r["p99_ms"] <= limits[p] for p, r in results.items()}
    result = {
        "benchmark": "endpoints",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load": {
            "target_requests_per_s": args.rate,
            "connections": CONNECTIONS,
            "seconds": args.seconds,
            "poll_interval_s": 1,
        },
        "endpoints": results,
        "targets_met": targets,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| endpoint | req/s | p50 ms | p99 ms |\n| --- | --- | --- | --- |")
    for path, r in results.items():
        print(f"| `{path}` | {r['requests_per_s']:.0f} | {r['p50_ms']} | {r['p99_ms']} |")
    print(json.dumps(targets, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
