"""The job workflow's activities: open a run's `jobs` row, run the handler (one `job_details`
row per attempt), and write the final status. They hold the only I/O of the Temporal engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from jobsight.runners.dberrors import DB_ERRORS, about_the_rows
from jobsight.runners.errors import (
    IllegalTransitionError,
    JobNotFoundError,
    UnknownJobError,
    describe_error,
)
from jobsight.runners.interface import HandlerConfig
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.service import Attempt, JobService
from jobsight.runners.status import JobStatus
from jobsight.runners.temporal import types as t

log = logging.getLogger("jobsight.temporal.activities")
WORKER_STOPPED = "worker stopped before the attempt finished (its grace ran out)"
RECORD_PATIENCE_S = 120.0  # how long an attempt's outcome is retried through a database outage


@dataclass
class TemporalContext:
    """The JobContext a handler gets under Temporal."""

    job_id: uuid.UUID
    job_name: str
    tenant: uuid.UUID
    attempt: int
    _service: JobService
    _client: Client
    _workflow_id: str
    _run_id: str

    @property
    def idempotency_key(self) -> str:
        return str(self.job_id)

    async def report_progress(self, fraction: float) -> None:
        await self._service.set_progress(self.job_id, fraction)
        activity.heartbeat(fraction)
        handle = self._client.get_workflow_handle(self._workflow_id, run_id=self._run_id)
        with contextlib.suppress(Exception):  # progress on the workflow is best effort
            await handle.signal(t.PROGRESS_SIGNAL, fraction)

    async def heartbeat(self) -> None:
        activity.heartbeat()


class JobActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: HandlerRegistry,
        client: Client,
        worker_version: str,
    ) -> None:
        self._service = JobService(pool)
        self._registry = registry
        self._client = client
        self._version = worker_version
        self._running: set[asyncio.Task[Any]] = set()  # activities running a handler now
        self._stopped: set[asyncio.Task[Any]] = set()  # ...that the worker's stop ended

    def stop_running(self) -> int:
        """Stops every running handler (the worker is stopping and its grace has run out)."""
        for task in self._running:
            self._stopped.add(task)
            task.cancel()
        return len(self._running)

    @activity.defn(name=t.OPEN_ACTIVITY)
    async def open_job(self, inp: t.OpenInput) -> None:
        """The `jobs` row of a run fired by a Schedule (idempotent: a retry finds it there)."""
        try:
            await self._service.get_job(inp.job_id)
            return
        except JobNotFoundError:
            pass
        row = await self._service.create_job(
            tenant=inp.tenant, job_name=inp.job_name, metadata=inp.data, runner_type="temporal",
            user_id=inp.user_id or None, job_id=inp.job_id, external_id=inp.workflow_id,
        )  # fmt: skip
        await self._service.set_external_run_id(row.job_id, inp.run_id)

    @activity.defn(name=t.RUN_ACTIVITY)
    async def run_handler(self, inp: t.RunInput) -> None:
        """One attempt: the handler runs, and its outcome is recorded before the activity ends.
        A success or a last failure also finishes the job's row, stamped when the handler
        ended, whatever waits in the task queue. Temporal delivers an activity at least once:
        a delivery that finds the job already completed returns without running the handler."""
        info = activity.info()
        try:
            config = self._registry.get(inp.job_name)
        except UnknownJobError as exc:
            raise ApplicationError(str(exc), type="UnknownJobError", non_retryable=True) from None
        try:
            await self._service.update_status(
                inp.job_id, JobStatus.PROCESSING, attempts=info.attempt,
                worker_version=self._version, external_run_id=inp.run_id,
            )  # fmt: skip
        except JobNotFoundError:
            # The producer withdrew the job (its start failed or timed out, and it may have been
            # scheduled elsewhere): this late run must not run it too.
            raise ApplicationError(
                f"job {inp.job_id} was withdrawn by its producer before it started",
                type=t.WITHDRAWN_ERROR, non_retryable=True,
            ) from None  # fmt: skip
        except IllegalTransitionError as exc:
            if exc.current == JobStatus.COMPLETED:  # a repeated delivery of a recorded success
                log.info("job %s: already completed; not running it again", inp.job_id)
                return
            # finished meanwhile (cancelled): nothing to run
            raise ApplicationError(str(exc), type="IllegalTransition", non_retryable=True) from None
        every = info.heartbeat_timeout.total_seconds() / 3 if info.heartbeat_timeout else 5.0
        beat = asyncio.create_task(self._heartbeat(max(every, 0.2)))
        try:
            await self._attempt(inp, config, info.attempt)
        finally:
            beat.cancel()

    async def _attempt(self, inp: t.RunInput, config: HandlerConfig, number: int) -> None:
        started = datetime.now(UTC)
        ctx = TemporalContext(uuid.UUID(inp.job_id), inp.job_name, uuid.UUID(inp.tenant),
                              number, self._service, self._client, inp.workflow_id,
                              inp.run_id)  # fmt: skip
        timeout_s = config.timeout.total_seconds() if config.timeout else None
        last = 0 < inp.max_attempts <= number
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                await config.handler(ctx, inp.data)
        except asyncio.CancelledError:
            if task not in self._stopped:  # the job itself was cancelled
                await self._record(inp, number, JobStatus.CANCELLED, started, "cancelled")
                raise
            task.uncancel()  # the worker stopped: this attempt fails, Temporal retries it
            await self._record(inp, number, JobStatus.FAILED, started, WORKER_STOPPED)
            raise ApplicationError(WORKER_STOPPED, type="WorkerStopped") from None
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                error = f"TimeoutError: no result within {timeout_s:g} s"
            else:
                error = describe_error(exc)
            await self._record(inp, number, JobStatus.FAILED, started, error, finish=last)
            raise ApplicationError(error, type=type(exc).__name__) from None
        finally:
            self._running.discard(task)
            self._stopped.discard(task)
        await self._record(inp, number, JobStatus.COMPLETED, started, None, finish=True)

    async def _heartbeat(self, interval: float) -> None:
        """Heartbeats while the handler runs and its outcome is written, so a lost worker is
        noticed and a cancel heard. The first one after a third of the heartbeat timeout (the
        server counts that timeout from the attempt's start): a job that ends sooner sends none,
        one round trip to the server fewer per job."""
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat()

    async def _record(
        self, inp: t.RunInput, number: int, status: JobStatus, started: datetime,
        error: str | None, *, finish: bool = False,
    ) -> None:  # fmt: skip
        """Writes the attempt's outcome, retrying through a database outage for up to
        RECORD_PATIENCE_S: the handler's work is done, and an activity that failed to record it
        would run the handler again."""
        attempt = Attempt(number, status, started, datetime.now(UTC), error, self._version)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + RECORD_PATIENCE_S
        delay = 0.2
        while True:
            try:
                await self._service.record_attempt(
                    inp.job_id, tenant=inp.tenant, attempt=attempt, finish=finish
                )
                return
            except DB_ERRORS as exc:
                if about_the_rows(exc) or loop.time() + delay > give_up:
                    raise
                log.warning("job %s: recording attempt %d failed (%s); retrying", inp.job_id,
                            number, describe_error(exc))  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @activity.defn(name=t.FINISH_ACTIVITY)
    async def finish_job(self, inp: t.FinishInput) -> None:
        """The final status; a retry after a lost acknowledgement finds it already written."""
        try:
            await self._service.update_status(inp.job_id, inp.status, error=inp.error)
        except IllegalTransitionError as exc:  # the run activity finished it (or a retry did)
            if exc.current != inp.status:
                log.warning("job %s: %s (left as %s)", inp.job_id, exc, exc.current)
