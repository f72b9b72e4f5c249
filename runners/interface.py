"""The JobRunner protocol and the types at its boundary (seed 000, section 5.1, in Python idiom).

Both engines implement `JobRunner`; application code depends on this module only.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from jobsight.runners.errors import ValidationError
from jobsight.runners.status import JobStatus
from jobsight.runners.validation import check_job_name, check_text


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed attempt is retried: delay = initial * coefficient**(attempt-1), capped."""

    max_attempts: int = 3
    backoff_coefficient: float = 2.0
    initial_interval: timedelta = timedelta(seconds=1)
    max_interval: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValidationError("retry.max_attempts", "must be at least 1")
        if self.backoff_coefficient < 1:
            raise ValidationError("retry.backoff_coefficient", "must be at least 1")
        if self.initial_interval < timedelta(0):
            raise ValidationError("retry.initial_interval", "must not be negative")
        if self.max_interval < self.initial_interval:
            raise ValidationError("retry.max_interval", "must be at least initial_interval")

    def delay_after(self, attempt: int) -> timedelta:
        """The wait before the attempt that follows failed attempt number `attempt` (1-based)."""
        cap = self.max_interval.total_seconds()
        try:
            seconds = self.initial_interval.total_seconds() * self.backoff_coefficient ** (
                attempt - 1
            )
        except OverflowError:
            seconds = cap
        return timedelta(seconds=min(seconds, cap))


class JobContext(Protocol):
    """What a handler gets besides its payload: who it is, and ways to report while it runs."""

    @property
    def job_id(self) -> uuid.UUID: ...
    @property
    def job_name(self) -> str: ...
    @property
    def tenant(self) -> uuid.UUID: ...
    @property
    def attempt(self) -> int: ...
    @property
    def idempotency_key(self) -> str:
        """The same for every attempt and every delivery of one job, different for any other
        job: pass it to the systems a handler changes (a payment API's Idempotency-Key, a
        unique column) so that running the job again changes nothing twice. Both engines
        deliver at least once: a worker that dies, or a Temporal server that restarts, after
        the handler's work but before its success is recorded runs the handler again."""
        ...

    async def report_progress(self, fraction: float) -> None:
        """Records progress (0..1) on the job; also counts as a heartbeat."""

    async def heartbeat(self) -> None:
        """Tells the engine this attempt is alive, so a long job is not taken for lost."""


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]
"""A handler returns nothing: its outcome is success or an exception, recorded on the job."""

DEFAULT_TIMEOUT = timedelta(minutes=15)  # a handler's attempt timeout unless it names one


@dataclass(frozen=True)
class HandlerConfig:
    """A job name, the coroutine that runs it, and how it is retried and timed out."""

    name: str
    handler: Handler
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: timedelta | None = DEFAULT_TIMEOUT
    dead_letter: str | None = None  # job name that receives a copy after the last failed attempt

    def __post_init__(self) -> None:
        check_job_name(self.name, "name")
        if not callable(self.handler):
            raise ValidationError("handler", "must be an async callable (context, data)")
        if self.timeout is not None and self.timeout <= timedelta(0):
            raise ValidationError("timeout", "must be positive (or None for no timeout)")
        if self.dead_letter is not None:
            check_job_name(self.dead_letter, "dead_letter")


@dataclass(frozen=True)
class ScheduleOptions:
    run_at: datetime | None = None
    singleton_key: str | None = None  # no second queued/active job with this key and job name
    priority: int = 0  # higher runs first

    def __post_init__(self) -> None:
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise ValidationError("run_at", "must be timezone-aware")
        if self.singleton_key is not None:
            if not isinstance(self.singleton_key, str) or not self.singleton_key.strip():
                raise ValidationError("singleton_key", "must be non-empty text when given")
            check_text(self.singleton_key, "singleton_key")
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise ValidationError("priority", f"must be a whole number, got {self.priority!r}")
        if not -32768 <= self.priority <= 32767:
            raise ValidationError("priority", "must fit in a smallint (-32768..32767)")

    def at(self, run_at: datetime) -> ScheduleOptions:
        """These options, due at `run_at`."""
        return ScheduleOptions(run_at=run_at, singleton_key=self.singleton_key,
                               priority=self.priority)  # fmt: skip


@dataclass(frozen=True)
class ScheduleResult:
    job_id: uuid.UUID  # the row in `jobs`
    external_id: str | None  # the engine's id (queue job id, workflow id or schedule id)
    duplicate: bool = False  # True: a singleton key matched an existing job, which this names


@dataclass(frozen=True)
class JobStatusInfo:
    status: JobStatus
    progress: float | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class JobRunner(Protocol):
    """Background job execution, whichever engine runs it."""

    def register_handler(self, config: HandlerConfig) -> None: ...

    async def schedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
    ) -> ScheduleResult:
        """Runs the job as soon as a worker is free."""
        ...

    async def schedule_job_at(
        self,
        job_name: str,
        data: dict[str, Any],
        run_at: datetime,
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
    ) -> ScheduleResult:
        """Runs the job no earlier than `run_at`."""
        ...

    async def schedule_recurring_job(
        self,
        job_name: str,
        data: dict[str, Any],
        interval: str,
        *,
        tenant: uuid.UUID | str,
    ) -> ScheduleResult:
        """Runs the job on a cron expression ("0 * * * *") or an interval ("24 hours");
        every run gets its own `jobs` row. The result names the schedule."""
        ...

    async def cancel_job(self, job_id: uuid.UUID | str) -> bool:
        """True when the job was waiting or running and is now cancelled."""
        ...

    async def get_job_status(self, job_id: uuid.UUID | str) -> JobStatusInfo: ...

    async def start(self) -> None:
        """Begins processing jobs for the registered handlers."""
        ...

    async def stop(self, grace: float | None = None) -> None:
        """Stops taking work, lets running jobs finish within `grace` seconds (default: the
        engine's shutdown_grace), hands back the rest, and closes the connections."""
        ...
