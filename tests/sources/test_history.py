"""The sidecar's own queries over a database with years of history: each reads through an index
in proportion to live or recent work, never the whole `jobs` or queue table. Checked on the
plans PostgreSQL picks for the real statements (timings on this machine would be noise)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from jobsight.sources import finished, jobs, pgqueue

# Three years of finished jobs, one every 8 minutes, and a year of failed queue rows kept for
# retry_job: enough rows that a scan of either table costs far more than its index.
HISTORY = """
INSERT INTO jobs (tenant, job_id, type, metadata, status, user_id, runner_type, created_at,
                  started_at, finished_at, updated_at, attempts, worker_version)
SELECT gen_random_uuid(), gen_random_uuid(), 'type-' || (g % 40), '{}',
       CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'completed' END::job_status, gen_random_uuid(),
       CASE WHEN g % 3 = 0 THEN 'temporal' ELSE 'pgqueue' END,
       now() - g * interval '8 minutes', now() - g * interval '8 minutes' + interval '1 second',
       now() - g * interval '8 minutes' + interval '3 seconds', now(), 1, 'v' || (g % 7)
FROM generate_series(1, 200000) g;
INSERT INTO pgqueue.job (id, name, tenant, state, created_at, started_at, completed_at, attempts)
SELECT gen_random_uuid(), 'type-' || (g % 40), gen_random_uuid(), 'failed',
       now() - g * interval '10 minutes', now() - g * interval '10 minutes',
       now() - g * interval '10 minutes', 3
FROM generate_series(1, 50000) g;
INSERT INTO jobs (tenant, job_id, type, status, user_id, created_at, started_at)
SELECT gen_random_uuid(), gen_random_uuid(), 'type-1', 'processing', gen_random_uuid(), now(), now()
FROM generate_series(1, 20);
ANALYZE;
"""

BIG_TABLES = {"jobs", "job"}  # the `jobs` table and pgqueue.job


def scanned_whole(plan: object) -> list[str]:
    """The big tables a plan reads with a sequential scan, anywhere in its tree."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in BIG_TABLES:
                found.append(node["Relation Name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(plan)
    return found


NOW = datetime.now(UTC)
QUERIES = {
    "jobs window": (jobs.WINDOW, (300.0,)),
    "jobs unfinished": (jobs.UNFINISHED, (600.0,)),
    "jobs stuck by version": (jobs.STUCK_BY_VERSION, (600.0,)),
    "finished since (counting)": (
        finished.COUNTING,
        (NOW - timedelta(minutes=5), NOW, finished.ZERO_UUID, 5000),
    ),
    "finished since (tracing)": (
        finished.TRACING,
        (NOW - timedelta(minutes=5), NOW, finished.ZERO_UUID, 5000),
    ),
    "pgqueue waiting and active": (pgqueue.WAITING_AND_ACTIVE, ()),
    "pgqueue recent": (pgqueue.RECENT, (900.0,)),
}


async def test_queries_read_recent_or_live_rows_only(conn: asyncpg.Connection):
    await conn.execute(HISTORY)
    whole_scans = {}
    for name, (sql, args) in QUERIES.items():
        plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
        if scanned := scanned_whole(plan):
            whole_scans[name] = scanned
        await conn.fetch(sql, *args)  # and it runs: the plan is of what the sidecar executes
    assert whole_scans == {}
    # The check can fail: a filter no index serves is reported.
    unserved = "EXPLAIN (FORMAT JSON) SELECT count(*) FROM jobs WHERE attempts = 1"
    assert scanned_whole(json.loads(await conn.fetchval(unserved))) == ["jobs"]
