"""Where a runner process publishes its breaker: one `runner_breakers` row per engine and process
(migration 0009), which the sidecar reads into metrics, the console and the verdict's detail.

The row is written by one background task: at once after a state change or a fallback, and
every BREAKER_REFRESH otherwise, so a row not refreshed for BREAKER_STALE_AFTER belongs to a
process that is gone. Writing is best effort: a database that cannot take the row is logged once
per outage and never fails a schedule call (the call's own writes report that).
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

log = logging.getLogger("jobsight.breaker")
UPSERT = """
INSERT INTO runner_breakers (engine, process, state, since, reason, fallbacks, seen_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (engine, process) DO UPDATE SET
  state = excluded.state, since = excluded.since, reason = excluded.reason,
  fallbacks = excluded.fallbacks, seen_at = now()
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
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), refresh)
            self._dirty.clear()
            try:
                await asyncio.wait_for(self._write(), refresh)
                if self._failing:
                    log.info("breaker state of %s is written again", self.engine)
                self._failing = False
            except DB_ERRORS as exc:
                if not self._failing:
                    hint = (" (run `jobsight migrate up`: migration 0009 adds runner_breakers)"
                            if isinstance(exc, asyncpg.UndefinedTableError) else "")  # fmt: skip
                    log.warning("cannot write the breaker state of %s: %s%s", self.engine,
                                describe_error(exc), hint)  # fmt: skip
                self._failing = True

    async def _write(self) -> None:
        pool = await self._pool()
        await pool.execute(UPSERT, self.engine, self.process, str(self.state), self.since,
                           self.reason, self.fallbacks)  # fmt: skip
