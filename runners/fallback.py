"""BreakerJobRunner: the Temporal engine behind a circuit breaker (runners/breaker.py), with
pgqueue as its fallback when JOB_RUNNER_FALLBACK_TO_PGQUEUE allows it.

A call to schedule a job asks the breaker first. Refused (open): with fallback, the job goes to
pgqueue at once; without, CircuitOpenError says since when and until when. Let through: the
Temporal engine schedules it; a failure that says Temporal itself is in trouble (an outage, not a
refusal of this request) counts against the breaker and, with fallback, sends the job to pgqueue,
but only when the Temporal engine withdrew the job's row: a workflow the server started late then
finds no row and ends without running it (runners/temporal/activities.py), so the job runs once,
on one engine. A job sent to pgqueue says so: its row's runner_type, a `job_details` note
(step "fallback"), a log line per breaker state change, and the fallback count the sidecar exports
(runners/breaker_record.py).

Recurring schedules never fall back: a schedule made on pgqueue during a short outage would run
there for good. They fail fast while the breaker is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from jobsight.runners.base import SchedulesAt
from jobsight.runners.breaker import BreakerSettings, BreakerState, Change, CircuitBreaker, Permit
from jobsight.runners.breaker_record import BreakerRecord
from jobsight.runners.errors import JobNotFoundError
from jobsight.runners.factory import cancel_on_owner, owner_of
from jobsight.runners.interface import (
    HandlerConfig,
    JobRunner,
    JobStatusInfo,
    ScheduleOptions,
    ScheduleResult,
)
from jobsight.runners.pgqueue import sql as pgqueue_sql
from jobsight.runners.recurrence import parse_recurrence
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.service import JobService
from jobsight.runners.status import JobStatus
from jobsight.runners.temporal.runner import (
    UNFINISHED_OF_WORKFLOW,
    CircuitOpenError,
    TemporalJobRunner,
    TemporalUnavailableError,
    singleton_workflow_id,
)

log = logging.getLogger("jobsight.breaker")
T = TypeVar("T")
FALLBACK_STEP = "fallback"  # the job_details step that notes a job sent to pgqueue instead


class BreakerJobRunner(SchedulesAt):
    runner_type = "temporal"

    def __init__(
        self,
        temporal: TemporalJobRunner,
        fallback: JobRunner | None,
        settings: BreakerSettings | None = None,
        *,
        owns_fallback: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.temporal = temporal
        self.fallback = fallback
        self._owns_fallback = owns_fallback and fallback is not None
        self.record = BreakerRecord("temporal", temporal.pool)
        options: dict[str, Any] = {"clock": clock} if clock is not None else {}
        self.breaker = CircuitBreaker(settings, on_change=self._changed, **options)
        self._start_later: asyncio.Task[None] | None = None

    @property
    def registry(self) -> HandlerRegistry:
        return self.temporal.registry

    def _changed(self, change: Change) -> None:
        if change.new == BreakerState.OPEN:
            then = "sending jobs to pgqueue" if self.fallback else "refusing jobs"
            log.warning("Temporal breaker open (%s); %s for %.0f s", change.reason, then,
                        self.breaker.settings.cooldown)  # fmt: skip
        else:
            log.info("Temporal breaker %s: %s", change.new.replace("_", "-"), change.reason)
        self.record.changed(change)

    def register_handler(self, config: HandlerConfig) -> None:
        self.temporal.register_handler(config)

    # --- scheduling --------------------------------------------------------------------------

    async def schedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
        user_id: uuid.UUID | str | None = None,
    ) -> ScheduleResult:
        async def on_temporal() -> ScheduleResult:
            return await self.temporal.schedule_job(
                job_name, data, tenant=tenant, options=options, user_id=user_id
            )

        self.temporal.check_job(job_name, data, tenant, user_id)  # a bad input is no outage
        key = options.singleton_key if options else None
        if key is not None and self.fallback is not None:
            held = await self._held_on_pgqueue(job_name, key)  # since an outage
            if held is not None:
                return held
        try:
            return await self._guarded(on_temporal, may_fall_back=True)
        except _Fallback as why:
            if key is not None:
                held = await self._held_on_temporal(job_name, key)
                if held is not None:
                    return held
            return await self._on_pgqueue(job_name, data, tenant, options, user_id, why.reason)

    async def _held_on_pgqueue(self, job_name: str, key: str) -> ScheduleResult | None:
        """A singleton key is one job across both engines: one that fell back to pgqueue still
        holds its key once Temporal is back."""
        pool = await self.temporal.pool()
        holder = await pool.fetchval(pgqueue_sql.SINGLETON_HOLDER, job_name, key)
        return None if holder is None else ScheduleResult(holder, str(holder), duplicate=True)

    async def _held_on_temporal(self, job_name: str, key: str) -> ScheduleResult | None:
        """...and one waiting or running on Temporal holds it while jobs go to pgqueue."""
        workflow_id = singleton_workflow_id(job_name, key)
        pool = await self.temporal.pool()
        holder = await pool.fetchval(UNFINISHED_OF_WORKFLOW, workflow_id)
        return None if holder is None else ScheduleResult(holder, workflow_id, duplicate=True)

    async def schedule_recurring_job(
        self,
        job_name: str,
        data: dict[str, Any],
        interval: str,
        *,
        tenant: uuid.UUID | str,
        user_id: uuid.UUID | str | None = None,
    ) -> ScheduleResult:
        async def on_temporal() -> ScheduleResult:
            return await self.temporal.schedule_recurring_job(
                job_name, data, interval, tenant=tenant, user_id=user_id
            )

        self.temporal.check_job(job_name, data, tenant, user_id)
        parse_recurrence(interval)  # a bad input is refused as such, open breaker or not

        return await self._guarded(on_temporal, may_fall_back=False)

    async def _guarded(self, call: Callable[[], Awaitable[T]], *, may_fall_back: bool) -> T:
        """Runs `call` on Temporal under the breaker; raises _Fallback where pgqueue should take
        the job instead, CircuitOpenError where the breaker refuses it with no fallback."""
        self.record.ensure_running()
        permit = self.breaker.acquire()
        if permit is None:
            reason = self._open_reason()
            if may_fall_back and self.fallback is not None:
                raise _Fallback(reason)
            raise CircuitOpenError(reason)
        return await self._call(call, permit, may_fall_back)

    async def _call(
        self, call: Callable[[], Awaitable[T]], permit: Permit, may_fall_back: bool
    ) -> T:
        try:
            result = await call()
        except TemporalUnavailableError as exc:
            if not exc.outage:
                self.breaker.release(permit)  # Temporal answered: a refusal, not an outage
                raise
            self.breaker.failure(permit, str(exc))
            if may_fall_back and self.fallback is not None:
                raise _Fallback(str(exc)) from None
            raise
        except BaseException:
            self.breaker.release(permit)
            raise
        self.breaker.success(permit)
        return result

    def _open_reason(self) -> str:
        state = self.breaker.state
        if state == BreakerState.HALF_OPEN:
            return "Temporal breaker half-open: a probe call is deciding whether to close it"
        return (f"Temporal breaker open ({self.breaker.last_error}); next probe in "
                f"{self.breaker.retry_in():.0f} s")  # fmt: skip

    async def _on_pgqueue(
        self,
        job_name: str,
        data: dict[str, Any],
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None,
        user_id: uuid.UUID | str | None,
        reason: str,
    ) -> ScheduleResult:
        assert self.fallback is not None
        schedule: Any = self.fallback.schedule_job  # pgqueue's takes user_id too
        result: ScheduleResult = await schedule(
            job_name, data, tenant=tenant, options=options, user_id=user_id
        )
        self.record.fell_back()
        if not result.duplicate:
            pool = await self.fallback.pool()  # type: ignore[attr-defined]
            with contextlib.suppress(JobNotFoundError):  # a job finished and purged at once
                await JobService(pool).add_detail(
                    result.job_id, tenant=tenant, step_name=FALLBACK_STEP,
                    status=JobStatus.QUEUED, metadata={"from": "temporal", "reason": reason},
                )  # fmt: skip
        return result

    # --- the rest of JobRunner --------------------------------------------------------------

    def _runners(self) -> list[JobRunner]:
        return [self.temporal, *([self.fallback] if self.fallback is not None else [])]

    async def cancel_job(self, job_id: uuid.UUID | str) -> bool:
        return await cancel_on_owner(self._runners(), job_id)

    async def get_job_status(self, job_id: uuid.UUID | str) -> JobStatusInfo:
        return await (await owner_of(self._runners(), job_id)).get_job_status(job_id)

    async def start(self) -> None:
        """Starts the fallback (when this runner owns it), then Temporal. Temporal unreachable:
        without fallback that is an error; with it the breaker opens, jobs go to pgqueue, and
        the Temporal worker is started once Temporal answers (tried every cool-down)."""
        if self._owns_fallback:
            assert self.fallback is not None
            await self.fallback.start()
        self.record.ensure_running()
        try:
            await self.temporal.start()
        except TemporalUnavailableError as exc:
            if self.fallback is None:
                raise
            self.breaker.trip(f"Temporal unreachable at start: {exc}")
            self._start_later = asyncio.create_task(self._start_when_back(), name="temporal-start")

    async def _start_when_back(self) -> None:
        while True:
            await asyncio.sleep(self.breaker.settings.cooldown)
            try:
                await self.temporal.start()
            except TemporalUnavailableError:
                continue
            log.info("Temporal answers again: its worker is started")
            return

    async def stop(self, grace: float | None = None) -> None:
        if self._start_later is not None:
            self._start_later.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._start_later
        await self.record.close()
        stops = [self.temporal.stop(grace)]
        if self._owns_fallback:
            assert self.fallback is not None
            stops.append(self.fallback.stop(grace))
        await asyncio.gather(*stops)


class _Fallback(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
