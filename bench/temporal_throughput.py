"""Temporal engine throughput: jobsight's Temporal engine against a bare temporalio worker, on one
dev server and one PostgreSQL, in one run (issue 21, target 1: >= 0.8x the bare worker).

  bare      bench/peers/temporal_bare.py: a workflow that runs one no-op activity, no database;
            the producer starts workflows with the temporalio client
  jobsight  `jobsight worker --runner temporal` with a no-op handler (bench/peers/
            temporal_jobsight.py); the producer is TemporalJobRunner.schedule_job, which writes
            the `jobs` row and starts the workflow; every row is written as in production

Each round starts the worker (its own process, on a task queue of its own), then sends N jobs
from this process (20 at a time) and waits for all N to complete: throughput is N over the time
from the first send to the last completion. CPU per job is the worker process's. Rounds of the
two peers alternate; medians are reported, with each round's figures and ratio in the JSON.

Usage: python -m bench.temporal_throughput [--jobs N] [--rounds R]
Writes bench/results/temporal_throughput.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.queue_throughput import Worker, cpu_used_s
from jobsight.devstack.localstack import LocalPostgres
from jobsight.devstack.temporal import LocalTemporal
from jobsight.runners import migrator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "temporal_throughput.json"
PY = sys.executable
SENDERS = 20
TENANT = uuid.UUID("00000000-0000-4000-8000-0000000be4c2")
TIMEOUT_S = 300.0


async def send_all(count: int, send: Any) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def sender() -> None:
        while not queue.empty():
            await send(queue.get_nowait())

    await asyncio.gather(*(sender() for _ in range(SENDERS)))


async def wait_until(done: Any, count: int, worker: Worker) -> None:
    deadline = time.perf_counter() + TIMEOUT_S
    while await done() < count:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"not done within {TIMEOUT_S} s")
        worker.sample()
        await asyncio.sleep(0.1)


async def bare_round(address: str, count: int) -> dict[str, float]:
    from temporalio.client import Client

    task_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(address)
    cmd = [PY, "-m", "bench.peers.temporal_bare", "worker", address, task_queue]
    query = f'TaskQueue = "{task_queue}" AND ExecutionStatus = "Completed"'

    async def send(i: int) -> None:
        await client.start_workflow("bench.noop", {"i": i}, id=f"{task_queue}-{i}",
                                    task_queue=task_queue)  # fmt: skip

    async def done() -> int:
        return int((await client.count_workflows(query)).count)

    return await timed(cmd, count, send, done)


async def jobsight_round(address: str, url: str, count: int) -> dict[str, float]:
    from bench.peers.temporal_jobsight import registry
    from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings

    task_queue = f"bench-js-{uuid.uuid4().hex[:8]}"
    cmd = [PY, "-m", "jobsight", "worker", "--runner", "temporal", "--handlers",
           "bench.peers.temporal_jobsight:registry", "--task-queue", task_queue,
           "--temporal-address", address, "--database-url", url]  # fmt: skip
    producer = TemporalJobRunner(
        url, registry, TemporalSettings(address=address, task_queue=task_queue), work=False
    )
    conn = await asyncpg.connect(url)
    await producer.pool()
    await producer.client()

    async def send(i: int) -> None:
        await producer.schedule_job("noop", {"i": i}, tenant=TENANT)

    async def done() -> int:
        completed = "SELECT count(*) FROM jobs WHERE status = 'completed' AND tenant = $1"
        return int(await conn.fetchval(completed, TENANT))

    try:
        before = await done()
        result = await timed(cmd, count, send, lambda: _minus(done, before))
    finally:
        await producer.stop()
        await conn.close()
    return result


async def _minus(done: Any, before: int) -> int:
    return int(await done()) - before


async def timed(cmd: list[str], count: int, send: Any, done: Any) -> dict[str, float]:
    async with Worker(cmd) as worker:
        cpu = worker.cpu()
        started = time.perf_counter()
        await send_all(count, send)
        await wait_until(done, count, worker)
        seconds = time.perf_counter() - started
        worker_s = cpu_used_s(cpu, worker.cpu())
    return {
        "jobs_per_s": round(count / seconds, 2),
        "worker_cpu_ms_per_job": round(worker_s / count * 1000, 2),
        "worker_rss_mb": round(worker.peak_rss / 2**20, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pg = LocalPostgres(database="bench")
    temporal = LocalTemporal()
    try:
        url = pg.start()
        address = temporal.start()
        conn = await asyncpg.connect(url)
        await migrator.migrate(conn, "up")
        settings = dict(await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')"
        ))  # fmt: skip
        await conn.close()
        rounds: list[dict[str, Any]] = []
        for n in range(args.rounds):
            bare = await bare_round(address, args.jobs)
            ours = await jobsight_round(address, url, args.jobs)
            ratio = round(ours["jobs_per_s"] / bare["jobs_per_s"], 3)
            rounds.append({"round": n + 1, "bare": bare, "jobsight": ours, "ratio": ratio})
            print(json.dumps(rounds[-1]), flush=True)
    finally:
        temporal.stop()
        pg.stop()

    def median(peer: str, key: str) -> float:
        return round(statistics.median(r[peer][key] for r in rounds), 2)

    summary = {
        peer: {key: median(peer, key) for key in rounds[0][peer]} for peer in ("bare", "jobsight")
    }
    ratio = round(statistics.median(r["ratio"] for r in rounds), 3)
    result = {
        "benchmark": "temporal_throughput",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "server": "temporal server start-dev (SQLite in memory); PostgreSQL from LocalPostgres",
        "postgres": settings,
        "load": {"jobs_per_round": args.jobs, "senders": SENDERS, "rounds": args.rounds},
        "rounds": rounds,
        "median": summary,
        "ratio_jobsight_over_bare": ratio,
        "targets_met": {"jobsight >= 0.8x bare": ratio >= 0.8},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| peer | jobs/s | worker CPU ms/job | worker RSS MB |\n| --- | --- | --- | --- |")
    for peer in ("bare", "jobsight"):
        s = summary[peer]
        print(f"| {peer} | {s['jobs_per_s']} | {s['worker_cpu_ms_per_job']} | "
              f"{s['worker_rss_mb']} |")  # fmt: skip
    print(f"\nratio (median of rounds): {ratio}x")


if __name__ == "__main__":
    asyncio.run(main())
