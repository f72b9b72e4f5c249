"""Where a runner process publishes its breaker: one `runner_breakers` row per engine and process
(migration 0009), which the sidecar reads into metrics, the console and the verdict's detail.

The row is written by one background task: at once after a state change or a fallback, and
every BREAKER_REFRESH otherwise, so a row not refreshed for BREAKER_STALE_AFTER belongs to a
process that is gone. Writing is best effort: a database that cannot take the row is logged once
per outage and never fails a schedule call (the call's own writes report that).

Every process also retires, now and then, the rows of processes gone for BREAKER_RETIRE_AFTER:
each engine's are folded into its one retired row (process '', never live), which keeps their
fallbacks, so the table stays as small as the last hour's processes while the fallback total
the sidecar sums over every row never goes down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from jobsight.runners import defaults
from jobsight.runners.breaker import BreakerState, Change
from jobsight.runners.dberrors import DB_ERRORS
from jobsight.runners.errors import describe_error, storable_text
from jobsight.runners.warn_once import warn_once

log = logging.getLogger("jobsight.breaker")
UPSERT = """
INSERT INTO runner_breakers (engine, process, state, since, reason, fallbacks, seen_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (engine, process) DO UPDATE SET
  state = excluded.state, since = excluded.since, reason = excluded.reason,
  fallbacks = excluded.fallbacks, seen_at = now()
"""
# $1 how long gone. Run by many processes at once, a gone row is still folded once: only the
# statement that deleted it returns it.
RETIRE = """
WITH gone AS (
  DELETE FROM runner_breakers
  WHERE seen_at < now() - $1::interval AND process <> ''
  RETURNING engine, fallbacks
)
INSERT INTO runner_breakers AS r (engine, process, state, since, reason, fallbacks, seen_at)
SELECT engine, '', 'closed', now(), 'processes gone', sum(fallbacks), '-infinity'
FROM gone GROUP BY engine
ON CONFLICT (engine, process) DO UPDATE SET fallbacks = r.fallbacks + excluded.fallbacks
"""
MAX_REASON = 500  # characters of the reason kept on the row


def process_name() -> str:
    """host/pid/random: unique even where every pod's process is pid 1."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


class BreakerRecord:
    def __init__(self, engine: str, pool: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self.engine = engine
        self.process = process_name()
        self._pool = pool
        self.state = BreakerState.CLOSED
        self.since = datetime.now(UTC)
        self.reason = ""
        self.fallbacks = 0
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def changed(self, change: Change) -> None:
        self.state, self.since = change.new, datetime.now(UTC)
        self.reason = storable_text(change.reason, MAX_REASON)
        self._dirty.set()

    def fell_back(self) -> None:
        self.fallbacks += 1
        self._dirty.set()

    def ensure_running(self) -> None:
        """Starts the writer (from any coroutine of the runner; idempotent)."""
        if self._task is None or self._task.done():
            self._dirty.set()
            self._task = asyncio.create_task(self._write_loop(), name="breaker-record")

    async def close(self) -> None:
        """Writes the last state once more, and stops the writer."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(*DB_ERRORS):
            await asyncio.wait_for(self._write(), defaults.BREAKER_REFRESH.total_seconds())

    async def _write_loop(self) -> None:
        refresh = defaults.BREAKER_REFRESH.total_seconds()
        loop = asyncio.get_running_loop()
        retire_at = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), refresh)
            self._dirty.clear()
            try:
                await asyncio.wait_for(self._write(), refresh)
                if self._failing:
                    log.info("breaker state of %s is written again", self.engine)
                self._failing = False
                if loop.time() >= retire_at:
                    retire_at = loop.time() + defaults.BREAKER_RETIRE_EVERY.total_seconds()
                    await self.retire_gone()
            except DB_ERRORS as exc:
                if not self._failing:
                    hint = (" (run `jobsight migrate up`: migration 0009 adds runner_breakers)"
                            if isinstance(exc, asyncpg.UndefinedTableError) else "")  # fmt: skip
                    log.warning("cannot write the breaker state of %s: %s%s", self.engine,
                                describe_error(exc), hint)  # fmt: skip
                self._failing = True

    async def retire_gone(self) -> None:
        """Folds the rows of processes gone for BREAKER_RETIRE_AFTER into the retired rows (best
        effort: on failure the rows stay, counted as before, and the next round tries again). A
        role that may not delete them is told once."""
        try:
            pool = await self._pool()
            await pool.execute(RETIRE, defaults.BREAKER_RETIRE_AFTER,
                               timeout=defaults.BREAKER_REFRESH.total_seconds())  # fmt: skip
        except asyncpg.InsufficientPrivilegeError as exc:
            warn_once(log, "retire refused", "cannot retire gone processes' runner_breakers rows "
                      "(%s); they stay and are still counted", describe_error(exc))  # fmt: skip
        except DB_ERRORS as exc:
            log.info("retiring gone processes' runner_breakers rows failed: %s",
                     describe_error(exc))  # fmt: skip

    async def _write(self) -> None:
        pool = await self._pool()
        await pool.execute(UPSERT, self.engine, self.process, str(self.state), self.since,
                           self.reason, self.fallbacks)  # fmt: skip
