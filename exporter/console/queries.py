"""The console's reads of the jobs tables: each page's SQL, parameterised, bounded by a LIMIT and
served by an index (bench/console.py checks every plan on 5M jobs). Rows come back as small
dataclasses; filters and cursors are validated before they get here (console/filters.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from jobsight.console.filters import Cursor, JobFilter
from jobsight.sources.versions import fingerprint

PAGE_SIZE = 50
BUCKET_S = 300  # the overview's chart buckets: 12 of them over the last hour
OVERVIEW_S = 3600
MAX_FAILED_READ = 5_000  # the failures page groups at most the latest this many failed attempts

LIST_COLUMNS = """tenant, job_id, type, status::text AS status, runner_type, worker_version,
    created_at, started_at, finished_at, attempts, error"""

# Over the last hour ($1 s), per job name: each 5-minute bucket ($2 s), the hour, and the hour
# by runner and worker version. Finished, failed, p95 run time and p95 wait (created to started),
# each p95 exact for its own group. Through jobs_finished_at_idx.
OVERVIEW = """
SELECT type AS job_name, runner_type AS runner, worker_version AS version,
       floor(extract(epoch FROM finished_at) / $2)::bigint AS bucket,
       GROUPING(runner_type, worker_version) = 0 AS by_release,
       count(*) AS finished, count(*) FILTER (WHERE status = 'failed') AS failed,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
         FILTER (WHERE started_at IS NOT NULL) AS run_p95,
       percentile_cont(0.95) WITHIN GROUP (
         ORDER BY extract(epoch FROM started_at - created_at::timestamptz))
         FILTER (WHERE started_at IS NOT NULL AND created_at IS NOT NULL) AS wait_p95
FROM jobs
WHERE finished_at > now() - $1 * interval '1 second' AND finished_at IS NOT NULL
GROUP BY GROUPING SETS ((type, floor(extract(epoch FROM finished_at) / $2)::bigint), (type),
                       (type, runner_type, worker_version))
"""

# $1 window (s), $2 limit: the latest failed attempts, through job_details_failed_idx.
FAILED_ATTEMPTS = """
SELECT d.tenant, d.job_id, j.type AS job_name, coalesce(d.worker_version, '') AS version,
       coalesce(d.error, '') AS error, d.finished_at
FROM job_details d JOIN jobs j USING (tenant, job_id)
WHERE d.status = 'failed' AND d.finished_at > now() - $1 * interval '1 second'
ORDER BY d.finished_at DESC
LIMIT $2
"""

JOB = f"SELECT {LIST_COLUMNS}, metadata, external_id, external_run_id, run_at, progress, user_id,"
JOB += " to_jsonb(jobs) ->> 'trace_context' AS trace_context"
JOB += " FROM jobs WHERE tenant = $1 AND job_id = $2"

ATTEMPTS = """
SELECT attempt, status::text AS status, started_at, finished_at, error, worker_version,
       processed_at, retry_count, step_name
FROM job_details
WHERE tenant = $1 AND job_id = $2
ORDER BY coalesce(attempt, retry_count + 1), processed_at NULLS LAST
LIMIT 200
"""

PGQUEUE_ROW = """
SELECT id, name, state::text AS state, priority, attempts, max_attempts, start_after, worker_id,
       heartbeat_at, created_at, completed_at, last_error, retry_of, schedule_id, dead_letter
FROM pgqueue.job WHERE id = $1
"""

PGQUEUE_SCHEDULES = """
SELECT s.id, s.name, s.spec, s.enabled, s.next_run_at, s.last_run_at,
       (SELECT j.status::text FROM jobs j
        WHERE j.type = s.name AND j.tenant = s.tenant AND j.finished_at IS NOT NULL
          AND j.finished_at > coalesce(s.last_run_at, now()) - interval '1 day'
        ORDER BY j.finished_at DESC LIMIT 1) AS last_outcome
FROM pgqueue.schedule s
ORDER BY s.name, s.id
LIMIT 500
"""


@dataclass(frozen=True)
class BucketRow:
    """One group of the overview: a bucket of a job name, its hour, or its hour by release."""

    job_name: str
    runner: str | None
    version: str | None
    bucket: int | None
    by_release: bool
    finished: int
    failed: int
    run_p95: float | None
    wait_p95: float | None


@dataclass(frozen=True)
class JobRow:
    tenant: UUID
    job_id: UUID
    type: str
    status: str
    runner_type: str
    worker_version: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int | None
    error: str | None


@dataclass(frozen=True)
class FailedAttempt:
    tenant: UUID
    job_id: UUID
    job_name: str
    version: str
    error: str
    finished_at: datetime

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.error)


async def overview(conn: asyncpg.Connection) -> list[BucketRow]:
    return [BucketRow(**r) for r in await conn.fetch(OVERVIEW, OVERVIEW_S, BUCKET_S)]


def search_sql(where: JobFilter, after: Cursor | None, limit: int) -> tuple[str, list[Any]]:
    """The jobs search: newest first by (created_at, job_id), keyset-paginated. Each filter adds
    one fixed clause with its value as a parameter; nothing of the request enters the text."""
    clauses, args = ["created_at IS NOT NULL"], []

    def add(clause: str, value: object) -> None:
        args.append(value)
        clauses.append(clause.replace("?", f"${len(args)}"))

    if where.job_id is not None:
        add("job_id = ?", where.job_id)
    if where.name:
        add("type = ?", where.name)
    if where.status:
        # The statuses are this module's constants (filters.STATUSES), written into the text so
        # that the planner can use the partial indexes of jobs not completed whatever the plan.
        clauses.append(f"status IN ({', '.join(repr(s) for s in where.statuses)})")
    if where.tenant is not None:
        add("tenant = ?", where.tenant)
    if where.version:
        add("worker_version = ?", where.version)
    if where.runner:
        add("runner_type = ?", where.runner)
    if where.since is not None:
        add("created_at >= ?::timestamptz", where.since)
    if where.until is not None:
        add("created_at < ?::timestamptz", where.until)
    if after is not None:
        args.extend([after.created_at, after.job_id])
        clauses.append(f"(created_at, job_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    sql = (
        f"SELECT {LIST_COLUMNS} FROM jobs WHERE {' AND '.join(clauses)} "  # noqa: S608 - fixed clauses
        f"ORDER BY created_at DESC, job_id DESC LIMIT ${len(args)}"
    )
    return sql, args


async def search(
    conn: asyncpg.Connection, where: JobFilter, after: Cursor | None, limit: int = PAGE_SIZE
) -> list[JobRow]:
    sql, args = search_sql(where, after, limit)
    return [JobRow(**r) for r in await conn.fetch(sql, *args)]


async def failed_attempts(conn: asyncpg.Connection, window: float) -> list[FailedAttempt]:
    rows = await conn.fetch(FAILED_ATTEMPTS, window, MAX_FAILED_READ)
    return [FailedAttempt(**r) for r in rows]


async def job(conn: asyncpg.Connection, tenant: UUID, job_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(JOB, tenant, job_id)
    return dict(row) if row else None


async def attempts(conn: asyncpg.Connection, tenant: UUID, job_id: UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(ATTEMPTS, tenant, job_id)]


async def pgqueue_row(conn: asyncpg.Connection, job_id: UUID) -> dict[str, Any] | None:
    if not await conn.fetchval("SELECT to_regclass('pgqueue.job') IS NOT NULL"):
        return None
    row = await conn.fetchrow(PGQUEUE_ROW, job_id)
    return dict(row) if row else None


async def pgqueue_schedules(conn: asyncpg.Connection) -> list[dict[str, Any]] | None:
    """pgqueue's recurring jobs; None when pgqueue is not installed."""
    if not await conn.fetchval("SELECT to_regclass('pgqueue.schedule') IS NOT NULL"):
        return None
    return [dict(r) for r in await conn.fetch(PGQUEUE_SCHEDULES)]


async def paused_names(conn: asyncpg.Connection) -> set[str]:
    """pgqueue's paused job names (none before migration 0007 or without pgqueue)."""
    if not await conn.fetchval("SELECT to_regclass('pgqueue.paused') IS NOT NULL"):
        return set()
    return {r["name"] for r in await conn.fetch("SELECT name FROM pgqueue.paused")}
