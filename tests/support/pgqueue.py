"""The pgqueue tests' consistency check: queue jobs against their `jobs` rows."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from jobsight.runners.records import STATUS_OF_STATE


async def disagreements(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Queue jobs whose `jobs` row is missing or says something else, and pgqueue `jobs` rows
    without a queue job that are not completed exactly once (a completed job leaves the queue in
    the statement that completes its `jobs` row, unless it came from a schedule or a retry)."""
    rows = await conn.fetch(
        """SELECT coalesce(q.id, j.job_id) AS id, q.state::text AS state, j.status::text AS status,
                  q.attempts, j.attempts AS row_attempts, j.external_id, j.runner_type,
                  (SELECT count(*) FROM job_details d WHERE d.tenant = j.tenant
                     AND d.job_id = j.job_id AND d.status = 'completed') AS completions
           FROM pgqueue.job q
           FULL JOIN (SELECT * FROM jobs WHERE runner_type = 'pgqueue') j
             ON j.job_id = q.id AND j.tenant = q.tenant"""
    )
    return [r for r in rows if _disagrees(r)]


def _disagrees(r: asyncpg.Record) -> bool:
    if r["external_id"] != str(r["id"]):
        return True
    if r["state"] is None:  # no queue job: it must have completed
        return r["status"] != "completed" or r["completions"] != 1
    return (
        r["status"] != STATUS_OF_STATE[r["state"]]
        or r["runner_type"] != "pgqueue"
        or (r["state"] in ("active", "completed") and r["row_attempts"] != r["attempts"])
    )


async def reachable_for(conn: asyncpg.Connection, age: timedelta) -> None:
    """As if maintenance rounds had run without a gap for `age`: the database has been reachable
    that long, so a heartbeat silent for longer than the timeout within it is a crash."""
    await conn.execute(
        """INSERT INTO pgqueue.maintenance (last_round_at, available_since)
           VALUES (now(), now() - $1::interval)
           ON CONFLICT (singleton)
           DO UPDATE SET last_round_at = now(), available_since = now() - $1::interval""",
        age,
    )
