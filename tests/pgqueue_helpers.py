"""Shared helpers for the pgqueue tests: waiting on conditions, and the consistency check
between queue jobs and their `jobs` rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg

# Which `jobs` status mirrors each queue state.
STATE_TO_STATUS = {
    "created": "queued",
    "retry": "queued",
    "active": "processing",
    "completed": "completed",
    "cancelled": "cancelled",
    "failed": "failed",
}


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float = 10.0, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within} s")


async def disagreements(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Queue jobs whose `jobs` row is missing or says something else."""
    rows = await conn.fetch(
        """SELECT q.id, q.state::text AS state, j.status::text AS status, q.attempts,
                  j.attempts AS row_attempts, j.external_id, j.runner_type
           FROM pgqueue.job q LEFT JOIN jobs j ON j.job_id = q.id AND j.tenant = q.tenant"""
    )
    return [
        r
        for r in rows
        if r["status"] != STATE_TO_STATUS[r["state"]]
        or r["external_id"] != str(r["id"])
        or r["runner_type"] != "pgqueue"
        or (r["state"] in ("active", "completed") and r["row_attempts"] != r["attempts"])
    ]
