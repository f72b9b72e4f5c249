"""Poll cost of the sidecar: does a poll scale with live work, not with history?

On one PostgreSQL, with the same live work throughout (50 job names x every unfinished status x 2
runners, and 1,000 jobs finished since the previous poll), the jobs table is grown to 10k, 1M and
5M finished jobs of history. At each size it times
  poll    one poll of the jobs source (what the sidecar runs every interval)
  naive   the seed plan's health queries on the same data: COUNT by status over the whole table,
          MAX of the completion time, and the stuck-job scan
Then, on the 5M database, it runs `jobsight serve` and records its resident memory with every
source on (Temporal dev server included) and without Temporal, and the /metrics latency under
load from wrk on loopback (the series of 50 names x all statuses x 2 runners).

Targets (issue 5): poll at 5M within 2x of poll at 10k; poll >= 10x faster than naive at 5M;
RSS <= 80 MB with every source, <= 50 MB without Temporal; /metrics p99 <= 20 ms.
The temporal part (bench/temporal_history.py, issue 21): the temporal source's poll at 25,000
closed workflows within 1.5x of its cost at 100.

Usage: python -m bench.poll_cost [--part all|jobs|temporal] [--sizes 10000,1000000,5000000]
       [--temporal-sizes 100,5000,25000] [--polls N]
Writes bench/results/poll_cost.json (a part run alone replaces only its own section) and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from bench import temporal_history, wrk
from jobsight.devstack.localstack import LocalPostgres, LocalTemporal, free_port
from jobsight.runners import migrator
from jobsight.settings import SidecarSettings
from jobsight.sources import jobs
from jobsight.sources.base import PollContext

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "poll_cost.json"
NAMES = [f"job-{i:02d}" for i in range(50)]
RUNNERS = ("pgqueue", "temporal")
UNFINISHED = ("pending", "queued", "processing", "active")
RECENT = 1000
NAIVE = {
    "count_by_status": "SELECT status, count(*) FROM jobs GROUP BY status",
    "max_completion": "SELECT max(updated_at) FROM jobs WHERE status = 'completed'",
    "stuck_scan": "SELECT count(*) FROM jobs WHERE status IN ('processing', 'active')"
    " AND updated_at < now() - interval '1 hour'",
}
HISTORY = """
INSERT INTO jobs (tenant, type, status, user_id, runner_type, created_at, updated_at,
                  started_at, finished_at, attempts)
SELECT '00000000-0000-4000-8000-000000000001', 'job-' || lpad((g % 50)::text, 2, '0'),
       (CASE WHEN g % 20 = 0 THEN 'failed' ELSE 'completed' END)::job_status,
       '00000000-0000-4000-8000-000000000001',
       CASE WHEN g % 2 = 0 THEN 'pgqueue' ELSE 'temporal' END,
       t - interval '2 seconds', t, t - interval '1 second', t, 1
FROM generate_series($1::bigint, $2::bigint) AS g,
     LATERAL (SELECT now() - interval '2 hours' - (g % 2592000) * interval '1 second' AS t) AS x
"""


async def grow_history(conn: asyncpg.Connection, have: int, want: int) -> None:
    step = 500_000
    for start in range(have + 1, want + 1, step):
        await conn.execute(HISTORY, start, min(want, start + step - 1))
    await conn.execute("VACUUM ANALYZE jobs")


async def live_work(conn: asyncpg.Connection) -> None:
    """Unfinished jobs for every (name, status, runner), plus RECENT jobs finished a minute ago."""
    await conn.execute(
        """INSERT INTO jobs (tenant, type, status, user_id, runner_type, started_at)
           SELECT '00000000-0000-4000-8000-000000000002', n, s::job_status,
                  '00000000-0000-4000-8000-000000000002', r,
                  CASE WHEN s IN ('processing', 'active') THEN now() - interval '10 minutes' END
           FROM unnest($1::text[]) n, unnest($2::text[]) s, unnest($3::text[]) r,
                generate_series(1, 2)""",
        NAMES,
        list(UNFINISHED),
        list(RUNNERS),
    )
    await conn.execute(
        """INSERT INTO jobs (tenant, type, status, user_id, runner_type, created_at, started_at,
                             finished_at, updated_at)
           SELECT '00000000-0000-4000-8000-000000000003', 'job-' || lpad((g % 50)::text, 2, '0'),
                  'completed', '00000000-0000-4000-8000-000000000003',
                  CASE WHEN g % 2 = 0 THEN 'pgqueue' ELSE 'temporal' END,
                  now() - interval '40 seconds', now() - interval '35 seconds',
                  now() - interval '30 seconds' + g * interval '1 millisecond', now()
           FROM generate_series(1, $1) g""",
        RECENT,
    )


async def time_poll(pool: asyncpg.Pool, polls: int) -> tuple[float, int]:
    """Median ms of a jobs-source poll that reads the RECENT jobs since its cursor."""
    settings = SidecarSettings(database_url="postgresql://unused", commit_lag=1.0)
    start_at = await pool.fetchval(  # just before the RECENT jobs, however long ago they finished
        "SELECT min(finished_at) - interval '1 millisecond' FROM jobs"
        " WHERE tenant = '00000000-0000-4000-8000-000000000003'"
    )
    previous = jobs.JobsSnapshot(cursor=jobs.FinishedCursor(start_at))
    timings, seen = [], 0
    for _ in range(polls):
        began = time.perf_counter()
        snap = await jobs.SOURCE.poll(PollContext(settings, pool, previous))
        timings.append((time.perf_counter() - began) * 1000)
        seen = snap.newly_finished
    return statistics.median(timings), seen


async def time_naive(pool: asyncpg.Pool, runs: int) -> dict[str, float]:
    result = {}
    for name, sql in NAIVE.items():
        timings = []
        for _ in range(runs):
            began = time.perf_counter()
            await pool.fetch(sql)
            timings.append((time.perf_counter() - began) * 1000)
        result[name] = statistics.median(timings)
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start_sidecar(
    url: str,
    port: int,
    sources: str,
    temporal: str | None,
    interval: str = "2s",
    extra: dict[str, str] | None = None,
) -> subprocess.Popen:
    env = {
        **os.environ,
        **(extra or {}),
        "DATABASE_URL": url,
        "JOBSIGHT_PORT": str(port),
        "JOBSIGHT_HOST": "127.0.0.1",
        "JOBSIGHT_POLL_INTERVAL": interval,
        "JOBSIGHT_SOURCES": sources,
    }
    env.pop("TEMPORAL_ADDRESS", None)
    if temporal:
        env["TEMPORAL_ADDRESS"] = temporal
    return subprocess.Popen(
        [sys.executable, "-m", "jobsight", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def measure_sidecar(url: str, temporal: str | None) -> dict[str, float]:
    """Steady-state RSS after several polls (peak of 10 samples)."""
    port = free_port()
    sources = "jobs,pgqueue,pgboss,postgres" + (",temporal" if temporal else "")
    proc = start_sidecar(url, port, sources, temporal)
    try:
        await asyncio.sleep(8)  # several polls of every source
        samples = []
        for _ in range(10):
            samples.append(rss_mb(proc.pid))
            await asyncio.sleep(0.5)
        result = {"rss_mb": max(samples)}
        if temporal:
            result.update(await wrk_metrics(port))
        return result
    finally:
        proc.terminate()
        proc.wait(30)


async def wrk_metrics(port: int) -> dict[str, float]:
    load = await asyncio.to_thread(
        wrk.run, f"http://127.0.0.1:{port}/metrics", threads=2, connections=8, seconds=15
    )
    import urllib.request

    def fetch() -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read()

    body = await asyncio.to_thread(fetch)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return {
        "metrics_p50_ms": load["p50_ms"],
        "metrics_p99_ms": load["p99_ms"],
        "metrics_requests_per_s": load["requests_per_s"],
        "metrics_series": series,
        "metrics_bytes": len(body),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("all", "jobs", "temporal"), default="all")
    parser.add_argument("--sizes", default="10000,1000000,5000000")
    parser.add_argument("--temporal-sizes", default="100,5000,25000")
    parser.add_argument("--polls", type=int, default=25)
    args = parser.parse_args()
    if args.part in ("all", "jobs"):
        await jobs_part(args)
    if args.part in ("all", "temporal"):
        sizes = [int(s) for s in args.temporal_sizes.split(",")]
        found = await temporal_history.measure(sizes, args.polls)
        result = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        result["temporal_history"] = {
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **found,
        }
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print("\n| closed workflows | poll ms | count over all history ms |\n| --- | --- | --- |")
        for row in found["sizes"]:
            print(
                f"| {row['history_closed']:,} | {row['poll_ms']} | {row['count_all_history_ms']} |"
            )


async def jobs_part(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    pg = LocalPostgres()
    url = os.environ.get("DATABASE_URL") or pg.start()
    temporal = LocalTemporal()
    try:
        conn = await asyncpg.connect(url)
        await migrator.migrate(conn, "up")
        await conn.execute("TRUNCATE jobs CASCADE")
        await live_work(conn)
        rows, have = [], 0
        async with asyncpg.create_pool(url, min_size=1, max_size=2) as pool:
            for size in sizes:
                began = time.monotonic()
                await grow_history(conn, have, size)
                have = size
                print(f"history {size:,}: built in {time.monotonic() - began:.0f} s", flush=True)
                poll_ms, seen = await time_poll(pool, args.polls)
                assert seen == RECENT, seen
                naive = await time_naive(pool, 5)
                naive_ms = sum(naive.values())
                rows.append(
                    {
                        "history": size,
                        "poll_ms": round(poll_ms, 3),
                        "naive_ms": round(naive_ms, 3),
                        "naive_queries_ms": {k: round(v, 3) for k, v in naive.items()},
                        "naive_over_poll": round(naive_ms / poll_ms, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        await conn.close()
        address = temporal.start()
        with_temporal = await measure_sidecar(url, address)
        without_temporal = await measure_sidecar(url, None)
    finally:
        temporal.stop()
        pg.stop()
    first, last = rows[0], rows[-1]
    summary = {
        "poll_growth_last_over_first": round(last["poll_ms"] / first["poll_ms"], 2),
        "naive_over_poll_at_largest": last["naive_over_poll"],
        "rss_mb_all_sources": round(with_temporal["rss_mb"], 1),
        "rss_mb_without_temporal": round(without_temporal["rss_mb"], 1),
        "metrics_p99_ms": with_temporal["metrics_p99_ms"],
    }
    targets = {
        "poll_growth <= 2": summary["poll_growth_last_over_first"] <= 2,
        "naive_over_poll >= 10": summary["naive_over_poll_at_largest"] >= 10,
        "rss all sources <= 80 MB": summary["rss_mb_all_sources"] <= 80,
        "rss without temporal <= 50 MB": summary["rss_mb_without_temporal"] <= 50,
        "metrics p99 <= 20 ms": summary["metrics_p99_ms"] <= 20,
    }
    result = {
        "benchmark": "poll_cost",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "live_work": {
            "job_names": len(NAMES),
            "runners": len(RUNNERS),
            "unfinished_jobs": len(NAMES) * len(UNFINISHED) * len(RUNNERS) * 2,
            "finished_since_last_poll": RECENT,
        },
        "polls_per_size": args.polls,
        "sizes": rows,
        "sidecar": {"all_sources": with_temporal, "without_temporal": without_temporal},
        "summary": summary,
        "targets_met": targets,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if RESULTS.exists() and "temporal_history" in (kept := json.loads(RESULTS.read_text())):
        result["temporal_history"] = kept["temporal_history"]
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| history | poll ms | naive ms | naive / poll |\n| --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['history']:,} | {row['poll_ms']} | {row['naive_ms']} | "
            f"{row['naive_over_poll']}x |"
        )
    print(json.dumps(summary, indent=2))
    print(json.dumps(targets, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
