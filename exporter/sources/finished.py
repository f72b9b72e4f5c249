"""Jobs finished since a cursor: the one reader behind the jobs source's counters and the traces.

Rows are read through jobs_finished_at_idx in (finished_at, job_id) order from a keyset cursor,
up to a *commit horizon*: now minus JOBSIGHT_COMMIT_LAG, held further back by the oldest open
write transaction in the database (up to JOBSIGHT_MAX_COMMIT_LAG). A transaction that commits
late therefore lands above the cursor, not below it: a reader neither misses nor repeats a row
under concurrent commits. Each reader keeps its own cursor in its stored snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from jobsight.settings import SidecarSettings

ZERO_UUID = "00000000-0000-0000-0000-000000000000"

# $1 commit lag, $2 max commit lag (seconds).
HORIZON = """
SELECT greatest(
         least(now(), coalesce((SELECT min(xact_start) FROM pg_stat_activity
                                WHERE datname = current_database() AND backend_xid IS NOT NULL
                                  AND pid <> pg_backend_pid()), now()))
           - $1 * interval '1 second',
         now() - $2 * interval '1 second') AS horizon,
       now() AS now
"""

# The columns each reader needs; the statement around them is the same for both.
COUNTING_COLUMNS = """
job_id::text AS job_id, type AS job_name, runner_type AS runner, status::text AS status,
extract(epoch FROM finished_at - started_at)::float8 AS run_s,
extract(epoch FROM started_at - greatest(created_at::timestamptz,
                                         coalesce(run_at, created_at::timestamptz)))::float8
  AS wait_s,
finished_at
"""
TRACING_COLUMNS = """
job_id::text AS job_id, tenant::text AS tenant, type AS job_name, runner_type AS runner,
status::text AS status, created_at::timestamptz AS created_at, started_at, finished_at,
attempts, error, external_id, worker_version,
to_jsonb(jobs) ->> 'trace_context' AS trace_context
"""
# (trace_context through to_jsonb: a jobs table migrated before 0008 reads NULL, not an error.)


def since_cursor(columns: str) -> str:
    """$1 cursor time, $2 horizon, $3 cursor job id, $4 limit."""
    return f"""
SELECT {columns}
FROM jobs
WHERE finished_at >= $1 AND finished_at < $2 AND (finished_at, job_id) > ($1, $3::uuid)
ORDER BY finished_at, job_id
LIMIT $4
"""  # noqa: S608 - the columns are this module's constants


COUNTING = since_cursor(COUNTING_COLUMNS)
# With migration 0008: each job's trace id, when it was scheduled inside a span (for exemplars).
COUNTING_TRACED = since_cursor(COUNTING_COLUMNS + ", substr(trace_context, 4, 32) AS trace_id")
TRACING = since_cursor(TRACING_COLUMNS)


@dataclass
class FinishedCursor:
    finished_at: datetime
    job_id: str = ZERO_UUID


async def commit_horizon(
    conn: asyncpg.Connection, settings: SidecarSettings
) -> tuple[datetime, datetime]:
    """(horizon, now): finished jobs older than the horizon can all be read (see above)."""
    row = await conn.fetchrow(HORIZON, settings.commit_lag, settings.max_commit_lag)
    return row["horizon"], row["now"]


async def read_finished(
    conn: asyncpg.Connection, query: str, cursor: FinishedCursor, horizon: datetime, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` jobs finished after the cursor and before the horizon, oldest first.
    `query` is COUNTING or TRACING."""
    rows: list[asyncpg.Record] = await conn.fetch(
        query, cursor.finished_at, horizon, cursor.job_id, limit
    )
    return rows
