"""Housekeeping shared by all workers, done by one at a time (advisory transaction locks):
workers that stopped heartbeating are marked crashed; active jobs past their timeout or without
a heartbeat fail that attempt (and retry while attempts remain); due recurring schedules fire
once each; finished queue rows older than the retention age are removed in small batches (most
completed jobs leave the queue when they complete: see sql.COMPLETE).

A heartbeat's silence counts only while the database was reachable: each round notes since when
rounds have run without a gap of more than half the heartbeat timeout, so an outage every worker
saw (a failover) is not taken for crashes, and a worker that really died during it is found one
heartbeat timeout after it ended."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from jobsight.runners.dberrors import DB_ERRORS
from jobsight.runners.errors import describe_error
from jobsight.runners.pgqueue import sql
from jobsight.runners.pgqueue.sending import send
from jobsight.runners.pgqueue.settings import PgQueueSettings
from jobsight.runners.recurrence import parse_recurrence
from jobsight.runners.registry import HandlerRegistry

log = logging.getLogger("jobsight.pgqueue.maintenance")

SCHEDULES_PER_ROUND = 100
RETENTION_ROUND_BUDGET_S = 2.0
MAX_BACKOFF_S = 60.0  # the maintainer's own retry delay after an unexpected error
SCHEDULE_RETRY_S = 30.0  # a schedule that failed to fire: 30 s, 60 s, ... up to an hour
SCHEDULE_RETRY_MAX_S = 3600.0


@dataclass(frozen=True)
class Report:
    crashed_workers: int
    recovered_jobs: int
    fired_schedules: int


class Maintainer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: HandlerRegistry,
        settings: PgQueueSettings,
        worker_id: Callable[[], uuid.UUID] | None = None,
    ) -> None:
        self._pool = pool
        self._registry = registry
        self._settings = settings
        self._worker_id = worker_id

    async def run(self) -> None:
        interval = self._settings.maintenance_interval.total_seconds()
        retention_every = self._settings.retention_interval.total_seconds()
        next_retention = time.monotonic()
        failures = 0
        while True:
            try:
                await self.run_once()
                if time.monotonic() >= next_retention:
                    await self.purge()
                    next_retention = time.monotonic() + retention_every
                failures = 0
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as exc:
                log.warning("maintenance failed (%s: %s); retrying", type(exc).__name__, exc)
            except Exception:  # whatever it is, crash detection and schedules must go on
                failures += 1
                log.exception("maintenance round failed unexpectedly (%d in a row)", failures)
                await asyncio.sleep(min(MAX_BACKOFF_S, interval * 2**failures))
            await asyncio.sleep(interval)

    async def run_once(self) -> Report | None:
        """One round under the maintenance lock; None when another worker holds it."""
        timeout_s = self._settings.heartbeat_timeout.total_seconds()
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(sql.TRY_LOCK, sql.MAINTENANCE_LOCK):
                return None
            runner = self._worker_id() if self._worker_id is not None else None
            reachable_since = await conn.fetchval(sql.ROUND_STARTED, runner, timeout_s / 2)
            crashed = await conn.fetch(sql.MARK_CRASHED, timeout_s, reachable_since)
            for row in crashed:
                log.warning("worker %s (host %s, pid %s, version %s) stopped heartbeating: crashed",
                            row["id"], row["host"], row["pid"], row["version"])  # fmt: skip
            lost = await conn.fetch(sql.LOST_JOBS, timeout_s, reachable_since)
            if lost:
                await conn.execute(
                    sql.FAIL, [r["id"] for r in lost], [r["reason"] for r in lost],
                    [None] * len(lost), [r["attempts"] for r in lost], None, None,
                )  # fmt: skip
                log.warning("recovered %d expired or orphaned jobs", len(lost))
            fired = await self._fire_schedules(conn)
        return Report(len(crashed), len(lost), fired)

    async def _fire_schedules(self, conn: asyncpg.Connection) -> int:
        """Fires each due schedule in its own savepoint: one that cannot fire records why and is
        tried again later, and never holds the others (or the maintainer) back."""
        due = await conn.fetch(sql.DUE_SCHEDULES, SCHEDULES_PER_ROUND)
        fired = 0
        for row in due:
            try:
                async with conn.transaction():
                    await self._fire(conn, row)
                fired += 1
            except (asyncpg.PostgresError, ValueError, TypeError, RecursionError) as exc:
                error = describe_error(exc)
                await conn.execute(
                    sql.SCHEDULE_FAILED, row["id"], error, SCHEDULE_RETRY_S, SCHEDULE_RETRY_MAX_S
                )
                log.error("schedule %s (%s) could not fire: %s", row["id"], row["name"], error)
        return fired

    async def _fire(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None:
        now: datetime = await conn.fetchval("SELECT now()")
        following = parse_recurrence(row["spec"]).next_after(max(now, row["next_run_at"]))
        await send(
            conn,
            self._registry,
            row["name"],
            row["tenant"],
            [json.loads(row["data"])],
            user_id=row["user_id"],
            max_payload_bytes=self._settings.max_payload_bytes,
            require_handler=False,
            schedule_id=row["id"],
        )
        await conn.execute(sql.ADVANCE_SCHEDULE, row["id"], row["next_run_at"], following)

    async def purge(self) -> int:
        """Removes finished queue rows past retention, batch by batch, within a time budget."""
        removed = 0
        age_s = self._settings.retention.total_seconds()
        deadline = time.monotonic() + RETENTION_ROUND_BUDGET_S
        while time.monotonic() < deadline:
            async with self._pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval(sql.TRY_LOCK, sql.RETENTION_LOCK):
                    return removed
                status = await conn.execute(
                    sql.PURGE_FINISHED, age_s, self._settings.retention_batch
                )
                count = int(status.split()[-1])
                if count < self._settings.retention_batch:
                    await conn.execute(sql.PURGE_WORKERS, age_s)
                    return removed + count
            removed += count
        return removed
