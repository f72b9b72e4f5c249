"""The pgqueue worker: fetches jobs in batches, runs their handlers, records outcomes in batches.

Loops, each its own task: one fetcher per job name (LISTEN/NOTIFY wake-ups, polling fallback),
one outcome flusher, one heartbeat (worker registry + the jobs it owns), one maintainer (crashes,
expiry, cron, retention; one worker at a time by advisory lock). A handler's exception fails that
attempt; nothing a handler does stops the worker. A database outage is logged and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from jobsight.runners.dberrors import DB_ERRORS, about_the_rows
from jobsight.runners.errors import describe_error, storable_text
from jobsight.runners.interface import HandlerConfig
from jobsight.runners.pgqueue import sql
from jobsight.runners.pgqueue.context import PgQueueContext
from jobsight.runners.pgqueue.maintenance import Maintainer
from jobsight.runners.pgqueue.settings import PgQueueSettings
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.tracing import job_span, tracing_configured

log = logging.getLogger("jobsight.pgqueue.worker")

UNSTORABLE_ERROR = "(the error text could not be stored)"
MAX_ERROR_BACKOFF_S = 5.0
FLUSHES_AT_ONCE = 1  # two at once measured no faster on two cores: they contend


@dataclass
class _Running:
    """One attempt running here. Everything about it is scoped to this object, not to the job
    id: a recovered job may be fetched again while its earlier attempt is still winding down."""

    name: str
    fetched_at: float  # loop time, to tell jobs taken after a heartbeat's snapshot
    watchdog: _Watchdog | None
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None  # why it was cancelled: timeout / cancelled / lost / handed back

    def abort(self, reason: str) -> None:
        if self.task is not None and not self.task.done():
            self.stop_reason = reason
            self.task.cancel()


@dataclass
class _Watchdog:
    """One timer for the jobs of one fetch that share a timeout (cheaper than one per job): at
    the deadline it cancels those still running; it is dropped when the last one finishes."""

    timeout_s: float
    runs: list[_Running] = field(default_factory=list)
    remaining: int = 0
    handle: asyncio.TimerHandle | None = None

    def done_one(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and self.handle is not None:
            self.handle.cancel()


@dataclass
class _Outcomes:
    """Finished attempts waiting to be written, in batches. Fetching pauses while there are
    max_unwritten_outcomes of them (backpressure: unwritten work stays bounded)."""

    ok_ids: list[uuid.UUID] = field(default_factory=list)
    ok_ms: list[float] = field(default_factory=list)
    ok_attempts: list[int] = field(default_factory=list)
    ok_linked: list[bool] = field(default_factory=list)  # keep the queue row (sql.COMPLETE_LINKED)
    fail_ids: list[uuid.UUID] = field(default_factory=list)
    fail_errors: list[str] = field(default_factory=list)
    fail_ms: list[float] = field(default_factory=list)
    fail_attempts: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ok_ids) + len(self.fail_ids)

    def take(self) -> _Outcomes:
        taken = _Outcomes(**{name: getattr(self, name) for name in _OUTCOME_FIELDS})
        for name in _OUTCOME_FIELDS:
            setattr(self, name, [])
        return taken

    def put_back(self, other: _Outcomes) -> None:
        for name in _OUTCOME_FIELDS:
            getattr(self, name)[:0] = getattr(other, name)

    def add(self, other: _Outcomes) -> None:
        for name in _OUTCOME_FIELDS:
            getattr(self, name).extend(getattr(other, name))

    def singles(self) -> list[_Outcomes]:
        """One batch per outcome."""
        ok = zip(self.ok_ids, self.ok_ms, self.ok_attempts, self.ok_linked, strict=True)
        failed = zip(self.fail_ids, self.fail_errors, self.fail_ms, self.fail_attempts, strict=True)
        return [_Outcomes([i], [ms], [a], [linked]) for i, ms, a, linked in ok] + [
            _Outcomes(fail_ids=[i], fail_errors=[e], fail_ms=[ms], fail_attempts=[a])
            for i, e, ms, a in failed
        ]


_OUTCOME_FIELDS = tuple(_Outcomes.__dataclass_fields__)


@dataclass
class _Strangers:
    """Jobs the database says this worker runs but the worker never received: a fetch that
    committed while its connection died loses its answer, and its jobs would sit active (kept
    alive by this worker's heartbeat) until their expiry. A job is an orphan once two heartbeats
    in a row found it owned and unknown, with no outcome unwritten, and every fetch that was in
    flight at the first of them has ended (so its answer is not merely late)."""

    seen: set[uuid.UUID] = field(default_factory=set)
    fetches_then: set[object] = field(default_factory=set)

    def confirm(self, strangers: set[uuid.UUID], fetching: set[object]) -> set[uuid.UUID]:
        orphans = set() if self.fetches_then & fetching else strangers & self.seen
        self.seen, self.fetches_then = strangers - orphans, set(fetching)
        return orphans


def _completions(
    batch: _Outcomes,
) -> list[tuple[str, list[uuid.UUID], list[float], list[int]]]:
    """The batch's completions as one statement per kind of row: deleted (the usual) or kept
    for its schedule or retry link. Split here, so that neither statement looks up the other's
    rows (rewriting a completion is harmless: a row already done no longer matches)."""
    if not any(batch.ok_linked):
        return [(sql.COMPLETE, batch.ok_ids, batch.ok_ms, batch.ok_attempts)]
    parts = []
    for statement, linked in ((sql.COMPLETE, False), (sql.COMPLETE_LINKED, True)):
        picked = [i for i, flag in enumerate(batch.ok_linked) if flag is linked]
        if picked:
            parts.append((statement, [batch.ok_ids[i] for i in picked],
                          [batch.ok_ms[i] for i in picked],
                          [batch.ok_attempts[i] for i in picked]))  # fmt: skip
    return parts


class Worker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        connect: Callable[[], asyncpg.Connection],
        registry: HandlerRegistry,
        settings: PgQueueSettings,
    ) -> None:
        self.id = uuid.uuid4()
        self._pool = pool
        self._connect = connect
        self._registry = registry
        self._settings = settings
        self._names = registry.names()
        self._running: dict[uuid.UUID, _Running] = {}
        self._in_flight = dict.fromkeys(self._names, 0)
        self._wake = {name: asyncio.Event() for name in self._names}
        self._slot_freed = {name: asyncio.Event() for name in self._names}
        self._outcomes = _Outcomes()
        self._cancel_checks: set[asyncio.Task[None]] = set()
        self._outcome_ready = asyncio.Event()
        self._flush_slots = asyncio.Semaphore(FLUSHES_AT_ONCE)
        self._unwritten = 0  # outcomes recorded and not yet written
        self._room = asyncio.Event()  # set whenever a write makes room
        self._flushes: set[asyncio.Task[None]] = set()
        self._fetchers: list[asyncio.Task[None]] = []
        self._services: list[asyncio.Task[None]] = []
        self._listener: asyncpg.Connection | None = None
        self._fetching: set[object] = set()  # one token per fetch in flight
        self._strangers = _Strangers()
        self._stopping = False
        self._maintainer = Maintainer(pool, registry, settings, lambda: self.id)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self._register()
        await self._listen()
        self._fetchers = [
            asyncio.create_task(self._fetch_loop(name), name=f"pgqueue-fetch-{name}")
            for name in self._names
        ]
        self._services = [
            asyncio.create_task(self._flush_loop(), name="pgqueue-flush"),
            asyncio.create_task(self._heartbeat_loop(), name="pgqueue-heartbeat"),
            asyncio.create_task(self._maintainer.run(), name="pgqueue-maintenance"),
        ]
        log.info("worker %s started for %s", self.id, ", ".join(self._names))

    async def stop(self, grace: float | None = None) -> None:
        """Stops fetching, lets running jobs finish within the grace period, hands back the rest
        (their attempt does not count), writes every outcome, and marks the worker stopped."""
        if self._stopping:
            return
        self._stopping = True
        grace_s = self._settings.shutdown_grace.total_seconds() if grace is None else grace
        for event in (*self._wake.values(), *self._slot_freed.values(), self._room):
            event.set()
        await asyncio.gather(*self._fetchers, return_exceptions=True)
        tasks = [run.task for run in self._running.values() if run.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        unfinished = {
            job_id: run
            for job_id, run in self._running.items()
            if run.task is not None and not run.task.done()
        }
        for run in unfinished.values():
            run.abort("handed back")
        await asyncio.gather(*(run.task for run in unfinished.values() if run.task),
                             return_exceptions=True)  # fmt: skip
        await self._flush()
        if unfinished:
            ids = list(unfinished)
            await self._with_retry(lambda c: c.execute(sql.HAND_BACK, ids, self.id))
            log.info("handed back %d unfinished jobs", len(ids))
        for task in self._services:
            task.cancel()
        await asyncio.gather(*self._services, return_exceptions=True)
        await self._flush()
        with contextlib.suppress(*DB_ERRORS):
            await self._pool.execute(sql.STOP_WORKER, self.id)
        await self._close_listener()
        log.info("worker %s stopped", self.id)

    async def _register(self) -> None:
        await self._pool.execute(
            sql.REGISTER_WORKER, self.id, socket.gethostname(), os.getpid(),
            self._settings.worker_version, self._names,
        )  # fmt: skip

    # --- notifications ----------------------------------------------------------------------

    async def _listen(self) -> None:
        try:
            listener = await self._connect()
            await listener.add_listener(sql.WAKE_CHANNEL, self._on_wake)
            await listener.add_listener(sql.CANCEL_CHANNEL, self._on_cancel)
            self._listener = listener
        except DB_ERRORS as exc:
            log.warning("LISTEN unavailable, polling only until it returns: %s", exc)

    async def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(*DB_ERRORS):
                await self._listener.close(timeout=5)
            self._listener = None

    def _on_wake(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        event = self._wake.get(payload)
        if event is not None:
            event.set()

    def _on_cancel(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        """A wake-up, not the authority (any database role can NOTIFY): a running job is
        stopped only once the database says it was cancelled."""
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            return
        if job_id in self._running:
            check = asyncio.get_running_loop().create_task(self._confirm_cancel(job_id))
            self._cancel_checks.add(check)
            check.add_done_callback(self._cancel_checks.discard)

    async def _confirm_cancel(self, job_id: uuid.UUID) -> None:
        try:
            state = await self._pool.fetchval(sql.JOB_STATE, job_id)
        except DB_ERRORS as exc:  # the heartbeat still notices a real cancel (job not owned)
            log.warning("cannot check a cancel of %s (%s)", job_id, describe_error(exc))
            return
        if state == "cancelled":
            self._abort(job_id, "cancelled")

    def _abort(self, job_id: uuid.UUID, reason: str) -> None:
        run = self._running.get(job_id)
        if run is not None:
            run.abort(reason)

    # --- fetching and running ---------------------------------------------------------------

    async def _fetch_loop(self, name: str) -> None:
        config = self._registry.get(name)
        limit = self._settings.concurrency_for(name)
        batch = min(self._settings.batch_size, limit)
        threshold = max(1, batch // 2)  # wait for half a batch of free slots: fewer, fuller fetches
        poll_s = self._settings.poll_interval.total_seconds()
        errors = 0
        cap = self._settings.max_unwritten_outcomes
        while not self._stopping:
            if self._unwritten >= cap:  # the database is behind: let it catch up first
                self._room.clear()
                await self._room.wait()
                continue
            free = limit - self._in_flight[name]
            if free < threshold:
                self._slot_freed[name].clear()
                await self._slot_freed[name].wait()
                continue
            self._wake[name].clear()
            token = object()
            self._fetching.add(token)
            try:
                rows = await self._pool.fetch(
                    sql.FETCH, name, min(free, batch), self.id, self._settings.worker_version
                )
                errors = 0
            except DB_ERRORS as exc:  # it may have committed all the same: see _Strangers
                errors += 1
                log.warning("fetch %s failed (%s); retrying", name, describe_error(exc))
                await asyncio.sleep(min(0.1 * 2**errors, MAX_ERROR_BACKOFF_S))
                continue
            finally:
                self._fetching.discard(token)
            loop = asyncio.get_running_loop()
            now = loop.time()
            watchdogs: dict[int, _Watchdog] = {}
            for row in rows:
                expire_ms = row["expire_ms"]
                watchdog = None
                if expire_ms is not None:
                    watchdog = watchdogs.get(expire_ms)
                    if watchdog is None:
                        watchdog = watchdogs[expire_ms] = _Watchdog(expire_ms / 1000)
                    watchdog.remaining += 1
                stale = self._running.pop(row["id"], None)
                if stale is not None:  # an earlier attempt still running here was recovered
                    stale.abort("lost")
                run = _Running(name, now, watchdog)
                if watchdog is not None:
                    watchdog.runs.append(run)
                self._in_flight[name] += 1
                run.task = asyncio.create_task(self._run(config, row, run))
                self._running[row["id"]] = run
            for watchdog in watchdogs.values():
                watchdog.handle = loop.call_at(now + watchdog.timeout_s, self._expire, watchdog)
            if len(rows) < min(free, batch) and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake[name].wait(), poll_s)

    async def _run(self, config: HandlerConfig, row: asyncpg.Record, run: _Running) -> None:
        job_id: uuid.UUID = row["id"]
        ctx = PgQueueContext(
            job_id, config.name, row["tenant"], row["attempts"], self._pool, self.id
        )
        error: str | None = None
        finished = False  # an outcome to write (it then holds the slot until written)
        try:
            data = json.loads(row["data"])
            if tracing_configured():
                with job_span(config.name, job_id, row["attempts"], row["trace_context"]):
                    await config.handler(ctx, data)
            else:  # no provider, nothing to record: no span on the hot path
                await config.handler(ctx, data)
            finished = True
        except asyncio.CancelledError:
            if run.stop_reason is None:
                raise  # not ours: the worker itself is being torn down
            if run.stop_reason == "timeout":
                error = f"TimeoutError: no result within {row['expire_ms'] / 1000:g} s"
                finished = True
            # cancelled / lost / handed back: the database already says so, or the hand-back will
        except Exception as exc:  # a handler's failure fails the attempt, never the worker
            error = describe_error(exc)
            finished = True
        finally:
            if finished:
                self._record(job_id, row["attempts"], run.fetched_at, error, row["linked"])
            self._release(job_id, run)

    def _expire(self, watchdog: _Watchdog) -> None:
        for run in watchdog.runs:
            run.abort("timeout")

    def _record(
        self, job_id: uuid.UUID, attempt: int, fetched_at: float, error: str | None, linked: bool
    ) -> None:
        """The attempt's run time counts from its fetch, on the loop's clock: its `started_at`
        is the fetch's, and its watchdog counts from there too, so a timed-out attempt is
        recorded as lasting at least its timeout."""
        elapsed_ms = (asyncio.get_running_loop().time() - fetched_at) * 1000
        self._unwritten += 1
        if error is None:
            self._outcomes.ok_ids.append(job_id)
            self._outcomes.ok_ms.append(elapsed_ms)
            self._outcomes.ok_attempts.append(attempt)
            self._outcomes.ok_linked.append(linked)
        else:
            self._outcomes.fail_ids.append(job_id)
            self._outcomes.fail_errors.append(storable_text(error))
            self._outcomes.fail_ms.append(elapsed_ms)
            self._outcomes.fail_attempts.append(attempt)
        self._outcome_ready.set()

    def _release(self, job_id: uuid.UUID, run: _Running) -> None:
        if self._running.get(job_id) is run:
            del self._running[job_id]
        if run.watchdog is not None:
            run.watchdog.done_one()
        self._in_flight[run.name] -= 1
        self._slot_freed[run.name].set()

    # --- outcomes ---------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        """Writes outcomes as they come, up to FLUSHES_AT_ONCE batches at a time (the database
        has more than one core); what arrives meanwhile forms the next batch."""
        while True:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            await self._flush_slots.acquire()
            if not self._outcomes:
                self._flush_slots.release()
                continue
            task = asyncio.create_task(self._write_in_background(self._outcomes.take()))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _write_in_background(self, batch: _Outcomes) -> None:
        try:
            if not await self._write(batch):
                self._outcomes.put_back(batch)
                await asyncio.sleep(0.5)  # database trouble: keep the outcomes, try again
                self._outcome_ready.set()
        finally:
            self._flush_slots.release()

    async def _flush(self) -> bool:
        """Writes every outcome now (used on stop); False when the database refused."""
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        if not self._outcomes:
            return True
        batch = self._outcomes.take()
        if await self._write(batch):
            return True
        self._outcomes.put_back(batch)
        return False

    def _written(self, count: int) -> None:
        self._unwritten -= count
        self._room.set()

    async def _write(self, batch: _Outcomes) -> bool:
        """One batch; what was written leaves the batch (making room), the rest stays."""
        version = self._settings.worker_version
        try:
            async with self._pool.acquire() as conn:
                if batch.ok_ids:
                    for statement, ids, ms, attempts in _completions(batch):
                        await conn.execute(statement, ids, ms, attempts, self.id, version)
                    self._written(len(batch.ok_ids))
                    batch.ok_ids, batch.ok_ms, batch.ok_attempts, batch.ok_linked = [], [], [], []
                if batch.fail_ids:
                    await conn.execute(sql.FAIL, batch.fail_ids, batch.fail_errors, batch.fail_ms,
                                       batch.fail_attempts, self.id, version)  # fmt: skip
                    self._written(len(batch.fail_ids))
                    batch.fail_ids, batch.fail_errors, batch.fail_ms = [], [], []
                    batch.fail_attempts = []
        except DB_ERRORS as exc:
            if about_the_rows(exc):
                return await self._write_refused(batch, exc)
            log.warning("recording %d outcomes failed (%s); will retry", len(batch),
                        describe_error(exc))  # fmt: skip
            return False
        return True

    async def _write_refused(self, batch: _Outcomes, exc: BaseException) -> bool:
        """The database refused a batch for its rows, not for the connection: each outcome is
        written on its own, so that one it refuses cannot hold the others; a failure whose text
        is still refused is written with a placeholder (its job fails all the same)."""
        if len(batch) > 1:
            left = _Outcomes()
            for single in batch.singles():
                if not await self._write(single):
                    left.add(single)
            for name in _OUTCOME_FIELDS:
                setattr(batch, name, getattr(left, name))
            return not left
        if batch.fail_errors and batch.fail_errors[0] != UNSTORABLE_ERROR:
            log.error(
                "an error text was refused (%s); recording a placeholder", describe_error(exc)
            )
            batch.fail_errors = [UNSTORABLE_ERROR]
            return await self._write(batch)
        log.error("an outcome was refused (%s); kept, will retry", describe_error(exc))
        return False

    # --- heartbeat --------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = self._settings.heartbeat_interval.total_seconds()
        renew_after = self._settings.job_renew_after.total_seconds()
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            snapshot = loop.time()
            known, settled = set(self._running), self._unwritten == 0
            try:
                async with self._pool.acquire() as conn:
                    found = await conn.fetch(sql.HEARTBEAT, self.id, renew_after)
                    owned = {row["id"] for row in found}
                    alive = bool(owned) or await conn.fetchval(sql.WORKER_RUNNING, self.id)
            except DB_ERRORS as exc:
                log.warning("heartbeat failed (%s)", describe_error(exc))
                continue
            strangers = owned - known - set(self._running) if settled else set()
            orphans = self._strangers.confirm(strangers, self._fetching)
            if orphans and not self._stopping:
                await self._hand_back_orphans(orphans)
            if not alive:
                log.error("worker %s was declared crashed (heartbeats too late); its jobs were "
                          "recovered elsewhere: re-registering", self.id)  # fmt: skip
                for job_id in list(self._running):
                    self._abort(job_id, "lost")
                self.id = uuid.uuid4()
                with contextlib.suppress(*DB_ERRORS):
                    await self._register()
                continue
            for job_id, run in list(self._running.items()):
                if run.fetched_at < snapshot and job_id not in owned:
                    self._abort(job_id, "lost")  # cancelled, or recovered by another worker
            if self._listener is None or self._listener.is_closed():
                await self._close_listener()
                await self._listen()

    async def _hand_back_orphans(self, orphans: set[uuid.UUID]) -> None:
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(sql.HAND_BACK, list(orphans), self.id)
        except DB_ERRORS as exc:
            log.warning("handing back %d orphaned jobs failed (%s)", len(orphans),
                        describe_error(exc))  # fmt: skip
            return
        log.warning("handed back %d jobs this worker owned but never received (a fetch whose "
                    "answer was lost with its connection)", len(orphans))  # fmt: skip

    async def _with_retry(self, action: Callable[[asyncpg.Connection], object]) -> None:
        for attempt in range(5):
            try:
                async with self._pool.acquire() as conn:
                    await action(conn)  # type: ignore[misc]
                return
            except DB_ERRORS as exc:
                log.warning("stop-time write failed (%s), attempt %d", describe_error(exc), attempt)
                await asyncio.sleep(0.5 * (attempt + 1))

    @property
    def in_flight(self) -> int:
        return len(self._running)
