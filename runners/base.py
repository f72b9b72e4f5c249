"""RunnerBase: the JobRunner verbs every engine shares, written once in terms of each engine's
own primitives (`schedule_job`, `pool()`, `registry`, `runner_type`)."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

import asyncpg

from jobsight.runners.interface import HandlerConfig, JobStatusInfo, ScheduleOptions, ScheduleResult
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.service import JobService


class RunnerBase(ABC):
    runner_type: str
    registry: HandlerRegistry

    @abstractmethod
    async def pool(self) -> asyncpg.Pool:
        """The engine's connection pool to the database that holds the `jobs` table."""

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

    def register_handler(self, config: HandlerConfig) -> None:
        self.registry.register(config)

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

    async def get_job_status(self, job_id: uuid.UUID | str) -> JobStatusInfo:
        return await JobService(await self.pool()).status_info(job_id, self.runner_type)
