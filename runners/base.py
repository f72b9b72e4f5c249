"""RunnerBase: what both engines share, written once (as saq's Queue base class does):
construction, the input checks of every scheduling verb, recurring-spec parsing, schedule_job_at,
get_job_status and stop(grace). An engine implements small primitives: its pool, schedule_job,
creating a recurring schedule, cancel_job, start, stopping its worker and closing."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import asyncpg

from jobsight.runners.interface import (
    HandlerConfig,
    JobStatusInfo,
    ScheduleOptions,
    ScheduleResult,
)
from jobsight.runners.recurrence import Recurrence, parse_recurrence
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.service import SYSTEM_USER, JobService
from jobsight.runners.validation import check_job_name, check_uuid, encode_payload


class EngineSettings(Protocol):
    """What the base class reads of an engine's settings."""

    @property
    def max_payload_bytes(self) -> int: ...
    @property
    def shutdown_grace(self) -> timedelta: ...


SettingsT = TypeVar("SettingsT", bound=EngineSettings)


@dataclass(frozen=True)
class CheckedJob:
    """A job request that passed every input check: a registered handler, ids, a payload that is
    a JSON object within the size limit (`payload`: its JSON text)."""

    config: HandlerConfig
    tenant: uuid.UUID
    user: uuid.UUID
    data: dict[str, Any]
    payload: str


@dataclass(frozen=True)
class RecurringJob:
    job: CheckedJob
    recurrence: Recurrence
    spec: str  # the cron expression or interval as given


class SchedulesAt(ABC):
    """schedule_job_at, written once over an engine's (or a wrapper's) schedule_job."""

    @abstractmethod
    async def schedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
        user_id: uuid.UUID | str | None = None,
    ) -> ScheduleResult:
        """Queues one job to run as soon as a worker is free."""

    async def schedule_job_at(
        self,
        job_name: str,
        data: dict[str, Any],
        run_at: datetime,
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
        user_id: uuid.UUID | str | None = None,
    ) -> ScheduleResult:
        timed = (options or ScheduleOptions()).at(run_at)
        return await self.schedule_job(
            job_name, data, tenant=tenant, options=timed, user_id=user_id
        )


class RunnerBase(SchedulesAt, Generic[SettingsT]):
    runner_type: ClassVar[str]

    def __init__(
        self,
        database_url: str,
        registry: HandlerRegistry | None = None,
        settings: SettingsT | None = None,
        *,
        work: bool = True,
    ) -> None:
        self._url = database_url
        self.registry = registry if registry is not None else HandlerRegistry()
        self.settings: SettingsT = settings if settings is not None else self.default_settings()
        self._work = work  # False: a producer only; start() never runs a worker

    # --- primitives each engine implements -----------------------------------------------

    @classmethod
    @abstractmethod
    def default_settings(cls) -> SettingsT:
        """The engine's settings when none are given."""

    @abstractmethod
    async def pool(self) -> asyncpg.Pool:
        """The engine's connection pool to the database that holds the `jobs` table."""

    @abstractmethod
    async def create_schedule(self, recurring: RecurringJob) -> ScheduleResult:
        """Creates the engine's recurring schedule for a checked job."""

    @abstractmethod
    async def cancel_job(self, job_id: uuid.UUID | str) -> bool:
        """True when the job was waiting or running and is now cancelled."""

    @abstractmethod
    async def start(self) -> None:
        """Connects, and works jobs for the registered handlers (unless work=False)."""

    @abstractmethod
    async def stop_worker(self, grace: float) -> None:
        """Stops taking work; running jobs get `grace` seconds, the rest are handed back."""

    @abstractmethod
    async def close(self) -> None:
        """Closes the engine's connections."""

    # --- shared verbs --------------------------------------------------------------------

    def register_handler(self, config: HandlerConfig) -> None:
        self.registry.register(config)

    def check_job(
        self,
        job_name: str,
        data: dict[str, Any],
        tenant: uuid.UUID | str,
        user_id: uuid.UUID | str | None,
    ) -> CheckedJob:
        """Every scheduling verb's input checks, before anything is written."""
        config = self.registry.get(check_job_name(job_name))
        tenant_id = check_uuid("tenant", tenant)
        user = SYSTEM_USER if user_id is None else check_uuid("user_id", user_id)
        payload = encode_payload(data, "data", self.settings.max_payload_bytes)
        return CheckedJob(config, tenant_id, user, data, payload)

    async def schedule_recurring_job(
        self,
        job_name: str,
        data: dict[str, Any],
        interval: str,
        *,
        tenant: uuid.UUID | str,
        user_id: uuid.UUID | str | None = None,
    ) -> ScheduleResult:
        """Fires `job_name` on a cron expression or an interval; each run is its own job.
        Returns the schedule's id (cancel it with `cancel_job`)."""
        job = self.check_job(job_name, data, tenant, user_id)
        return await self.create_schedule(RecurringJob(job, parse_recurrence(interval), interval))

    async def get_job_status(self, job_id: uuid.UUID | str) -> JobStatusInfo:
        return await JobService(await self.pool()).status_info(job_id, self.runner_type)

    async def stop(self, grace: float | None = None) -> None:
        """Stops taking work, lets running jobs finish within `grace` seconds (default: the
        engine's shutdown_grace), hands the rest back, and closes the connections."""
        seconds = self.settings.shutdown_grace.total_seconds() if grace is None else grace
        try:
            await self.stop_worker(max(0.0, seconds))
        finally:
            await self.close()
