"""The operator console's speed on a jobs table with history (issue 19).

One PostgreSQL gets 5M finished jobs spread over 30 days (2% failed, each failed job with three
failed attempts in job_details, every job with its attempts), 40 job names, 3 worker versions,
and live work (every job name waiting and running, pgqueue schedules). A sidecar serves the
console; from loopback, CLIENTS concurrent clients request each page REQUESTS times and the
bench records each page's p50 and p95. Every console query's plan (EXPLAIN) is checked for a
sequential scan of jobs or job_details. Beside the keyset-paginated search, the same page deep
in the results through OFFSET, the way most job browsers page, is timed as the peer.

The search's opt-in indexes (`jobsight console-indexes`) are created after the fill; what they
cost the application's inserts is measured beside, on a fresh database, with and without them.

Target: every page p95 <= 100 ms; no plan with a sequential scan of jobs or job_details. The
overview's hour and the failure groups are computed at most every 10 s (the pages say when);
both are also timed afresh, uncached.

Usage: python -m bench.console [--jobs 5000000] [--requests 100]
Writes bench/results/console.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.poll_cost import live_work, start_sidecar
from jobsight.console import model, queries
from jobsight.console.filters import Cursor, JobFilter
from jobsight.console.indexes import create_statements, drop_statements
from jobsight.devstack.localstack import LocalPostgres, free_port
from jobsight.runners import migrator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "console.json"
TENANT = "00000000-0000-4000-8000-000000000005"
CLIENTS = 4
NAMES = 40
DAYS = 30
TARGET_P95_MS = 100.0

# $1 first, $2 last: job g finishes g/total of the way through the last DAYS days.
HISTORY = f"""
INSERT INTO jobs (tenant, job_id, type, status, user_id, runner_type, created_at, updated_at,
                  started_at, finished_at, attempts, worker_version, error)
SELECT '{TENANT}', gen_random_uuid(), 'job-' || (g % {NAMES}),
       (CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'completed' END)::job_status,
       '{TENANT}', CASE WHEN g % 3 = 0 THEN 'temporal' ELSE 'pgqueue' END,
       (t - interval '2 seconds')::timestamp, t::timestamp, t - interval '1 second', t,
       CASE WHEN g % 50 = 0 THEN 3 ELSE 1 END, 'v' || (g % 3),
       CASE WHEN g % 50 = 0 THEN 'TimeoutError: upstream ' || (g % 7) || ' after ' || g || ' ms' END
FROM generate_series($1::bigint, $2::bigint) AS g,
     LATERAL (SELECT now() - ($3::bigint - g) * ({DAYS} * 86400.0 / $3::bigint)
                     * interval '1 second' AS t) AS x
"""  # noqa: S608 - constants of this file

ATTEMPTS = """
INSERT INTO job_details (tenant, job_id, step_name, status, processed_at, attempt, started_at,
                         finished_at, error, worker_version)
SELECT j.tenant, j.job_id, 'attempt', j.status, j.finished_at::timestamp, a, j.started_at,
       j.finished_at, j.error, j.worker_version
FROM jobs j, generate_series(1, j.attempts) AS a
WHERE j.tenant = $1 AND j.created_at >= $2 AND j.created_at < $3
"""

SCHEDULES = """
INSERT INTO pgqueue.schedule (id, name, tenant, user_id, spec, next_run_at, last_run_at)
SELECT gen_random_uuid(), 'job-' || g, $1, $1, '*/5 * * * *', now() + interval '4 minutes',
       now() - interval '1 minute'
FROM generate_series(0, 19) AS g
"""


async def fill(conn: asyncpg.Connection, total: int) -> float:
    began = time.perf_counter()
    step = 500_000
    for start in range(1, total + 1, step):
        await conn.execute(HISTORY, start, min(total, start + step - 1), total, timeout=1800)
    for statement in create_statements():  # the search's opt-in indexes (console-indexes)
        await conn.execute(statement, timeout=1800)
    day = await conn.fetchval("SELECT min(created_at) FROM jobs")
    last = await conn.fetchval("SELECT max(created_at) + interval '1 second' FROM jobs")
    while day < last:  # a day of jobs at a time
        await conn.execute(ATTEMPTS, TENANT, day, day + timedelta(days=1), timeout=1800)
        day += timedelta(days=1)
    await live_work(conn)
    await conn.execute(SCHEDULES, TENANT)
    await conn.execute("VACUUM ANALYZE jobs", timeout=1800)
    await conn.execute("VACUUM ANALYZE job_details", timeout=1800)
    return time.perf_counter() - began


def seq_scans(plan: Any) -> list[str]:
    """Relations of jobs / job_details a plan reads by sequential scan."""
    found = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in (
                "jobs",
                "job_details",
            ):
                found.append(node["Relation Name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


async def plans(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Each console query's sequential scans of the jobs tables (empty: none)."""
    some = await conn.fetchrow(
        "SELECT tenant, job_id, created_at FROM jobs WHERE status = 'failed' LIMIT 1"
    )
    cursor = Cursor(some["created_at"], some["job_id"])
    checks: dict[str, tuple[str, list[Any]]] = {
        "overview": (queries.OVERVIEW, [queries.OVERVIEW_S, queries.BUCKET_S]),
        "failures": (queries.FAILED_ATTEMPTS, [86400, queries.MAX_FAILED_READ]),
        "job": (queries.JOB, [some["tenant"], some["job_id"]]),
        "attempts": (queries.ATTEMPTS, [some["tenant"], some["job_id"]]),
    }
    searches = {
        "search": JobFilter(),
        "search by name": JobFilter(name="job-7"),
        "search failed": JobFilter(status="failed"),
        "search name+status+version": JobFilter(name="job-7", status="failed", version="v1"),
        "search by id": JobFilter(job_id=some["job_id"]),
        "search by tenant": JobFilter(tenant=some["tenant"]),
    }
    for label, where in searches.items():
        checks[label] = queries.search_sql(where, None, queries.PAGE_SIZE + 1)
        checks[label + " (next page)"] = queries.search_sql(where, cursor, queries.PAGE_SIZE + 1)
    found = {}
    for label, (sql, args) in checks.items():
        plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
        found[label] = seq_scans(plan)
    return found


async def deep_page(conn: asyncpg.Connection, depth: int, runs: int = 5) -> dict[str, float] | None:
    """Page `depth` of the name search: keyset (from the cursor of the page before) against
    OFFSET, the peer's way."""
    where = JobFilter(name="job-7")
    row = await conn.fetchrow(
        "SELECT created_at, job_id FROM jobs WHERE type = 'job-7' AND created_at IS NOT NULL"
        " ORDER BY created_at DESC, job_id DESC OFFSET $1 LIMIT 1",
        depth * queries.PAGE_SIZE - 1,
    )
    if row is None:  # fewer pages than that
        return None
    keyset_sql, keyset_args = queries.search_sql(
        where, Cursor(row["created_at"], row["job_id"]), queries.PAGE_SIZE
    )
    offset_sql = (
        f"SELECT {queries.LIST_COLUMNS} FROM jobs WHERE type = $1 AND created_at IS NOT NULL "  # noqa: S608
        "ORDER BY created_at DESC, job_id DESC OFFSET $2 LIMIT $3"
    )
    timings: dict[str, list[float]] = {"keyset": [], "offset": []}
    for _ in range(runs):
        began = time.perf_counter()
        await conn.fetch(keyset_sql, *keyset_args)
        timings["keyset"].append(time.perf_counter() - began)
        began = time.perf_counter()
        await conn.fetch(offset_sql, "job-7", depth * queries.PAGE_SIZE, queries.PAGE_SIZE)
        timings["offset"].append(time.perf_counter() - began)
    keyset = statistics.median(timings["keyset"]) * 1000
    offset = statistics.median(timings["offset"]) * 1000
    return {"page": depth, "keyset_ms": round(keyset, 2), "offset_ms": round(offset, 2),
            "offset_over_keyset": round(offset / keyset, 1)}  # fmt: skip


async def write_cost(url: str, rows: int = 200_000, runs: int = 3) -> dict[str, float]:
    """What the console's indexes on jobs cost the application's writes: inserting jobs into a
    fresh database, with and without them (each run on an emptied table), median seconds."""
    admin = await asyncpg.connect(url)
    await admin.execute("DROP DATABASE IF EXISTS bench_write")
    await admin.execute("CREATE DATABASE bench_write")
    await admin.close()
    conn = await asyncpg.connect(url.rsplit("/", 1)[0] + "/bench_write")
    try:
        await migrator.migrate(conn, "up")
        for statement in create_statements():
            await conn.execute(statement)
        timings: dict[str, list[float]] = {"with": [], "without": []}
        for label in ("with", "without"):
            if label == "without":
                for statement in drop_statements():
                    await conn.execute(statement)
            for _ in range(runs):
                await conn.execute("TRUNCATE jobs CASCADE")
                began = time.perf_counter()
                await conn.execute(HISTORY, 1, rows, rows, timeout=600)
                timings[label].append(time.perf_counter() - began)
    finally:
        await conn.close()
    with_s, without_s = (statistics.median(timings[k]) for k in ("with", "without"))
    return {"rows": rows, "with_s": round(with_s, 2), "without_s": round(without_s, 2),
            "with_over_without": round(with_s / without_s, 2)}  # fmt: skip


async def load(base: str, path: str, requests: int) -> dict[str, float]:
    """CLIENTS clients request the page `requests` times in all; its p50 and p95 in ms."""
    timings: list[float] = []
    statuses: set[int] = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def client(count: int) -> None:
            for _ in range(count):
                began = time.perf_counter()
                async with session.get(base + path) as response:
                    await response.read()
                    statuses.add(response.status)
                timings.append(time.perf_counter() - began)

        async with session.get(base + path) as warm:  # one warm-up
            await warm.read()
        await asyncio.gather(*(client(requests // CLIENTS) for _ in range(CLIENTS)))
    timings.sort()
    return {
        "p50_ms": round(statistics.median(timings) * 1000, 1),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))] * 1000, 1),
        "requests": len(timings),
        "statuses": sorted(statuses),  # type: ignore[dict-item]
    }


async def run(total: int, requests: int) -> dict[str, Any]:
    pg = LocalPostgres()
    url = os.environ.get("DATABASE_URL") or pg.start()
    try:
        conn = await asyncpg.connect(url)
        await migrator.migrate(conn, "up")
        writes = await write_cost(url)
        filled_s = await fill(conn, total)
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM jobs) AS jobs,"
            " (SELECT count(*) FROM job_details) AS details"
        )
        found_plans = await plans(conn)
        deep = [d for depth in (10, 100, 1000) if (d := await deep_page(conn, depth))]
        overview_ms, failures_ms = [], []
        for _ in range(5):  # read afresh, as the pages do at most every 10 s
            began = time.perf_counter()
            await queries.overview(conn)
            overview_ms.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            attempts = await queries.failed_attempts(conn, 86400)
            model.failure_groups(attempts, time.time(), 86400)
            failures_ms.append((time.perf_counter() - began) * 1000)
        job = await conn.fetchrow("SELECT tenant, job_id FROM jobs WHERE status = 'failed' LIMIT 1")
        page2 = await conn.fetchrow(
            "SELECT created_at, job_id FROM jobs WHERE type = 'job-7' AND created_at IS NOT NULL"
            " ORDER BY created_at DESC, job_id DESC OFFSET 49 LIMIT 1"
        )
        group = await conn.fetchval(
            "SELECT error FROM job_details WHERE status = 'failed'"
            " ORDER BY finished_at DESC LIMIT 1"
        )
        await conn.close()
        from jobsight.console.model import group_key
        from jobsight.sources.versions import fingerprint

        port = free_port()
        proc = start_sidecar(url, port, "jobs,pgqueue,postgres", None, interval="2s")
        try:
            await asyncio.sleep(6)
            base = f"http://127.0.0.1:{port}"
            cursor = Cursor(page2["created_at"], page2["job_id"]).encode()
            pages = {
                "/ (overview)": "/",
                "/queues": "/queues",
                "/failures (24h)": "/failures",
                "/failures (one group)": f"/failures?group={group_key(fingerprint(group))}",
                "/schedules": "/schedules",
                "/jobs": "/jobs",
                "/jobs?name=": "/jobs?name=job-7",
                "/jobs?status=failed": "/jobs?status=failed",
                "/jobs?name=&status=&version=": "/jobs?name=job-7&status=failed&version=v1",
                "/jobs?since=1h": "/jobs?since=1h",
                "/jobs (page 2)": f"/jobs?name=job-7&after={cursor}",
                "/jobs/<tenant>/<id>": f"/jobs/{job['tenant']}/{job['job_id']}",
            }
            timed = {label: await load(base, path, requests) for label, path in pages.items()}
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    finally:
        pg.stop()
    worst = max(r["p95_ms"] for r in timed.values())
    return {
        "bench": "console",
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} cpus",
        "jobs": counts["jobs"],
        "job_details": counts["details"],
        "fill_seconds": round(filled_s, 1),
        "clients": CLIENTS,
        "requests_per_page": requests,
        "pages": timed,
        "worst_p95_ms": worst,
        "target_p95_ms": TARGET_P95_MS,
        "met": worst <= TARGET_P95_MS and not any(found_plans.values()),
        "overview_query_ms": round(statistics.median(overview_ms), 1),
        "failure_groups_uncached_ms": round(statistics.median(failures_ms), 1),
        "seq_scans": found_plans,
        "deep_pages": deep,
        "insert_cost_of_console_indexes": writes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5_000_000)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    result = asyncio.run(run(args.jobs, args.requests))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| page | p50 ms | p95 ms |")
    print("| --- | ---: | ---: |")
    for label, row in result["pages"].items():
        print(f"| `{label}` | {row['p50_ms']} | {row['p95_ms']} |")
    print("overview query, uncached:", result["overview_query_ms"], "ms")
    print("failure groups (24 h), uncached:", result["failure_groups_uncached_ms"], "ms")
    print("sequential scans:", {k: v for k, v in result["seq_scans"].items() if v} or "none")
    for row in result["deep_pages"]:
        print(row)
    print(
        "inserting jobs with / without the console's indexes:",
        result["insert_cost_of_console_indexes"],
    )


if __name__ == "__main__":
    main()
