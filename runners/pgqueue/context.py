"""The JobContext a pgqueue handler receives."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from jobsight.runners.pgqueue import sql
from jobsight.runners.service import JobService


@dataclass
class PgQueueContext:
    job_id: uuid.UUID
    job_name: str
    tenant: uuid.UUID
    attempt: int
    _pool: asyncpg.Pool
    _worker_id: uuid.UUID

    @property
    def idempotency_key(self) -> str:
        return str(self.job_id)

    async def report_progress(self, fraction: float) -> None:
        """Records progress (0..1) on the `jobs` row; also a heartbeat."""
        await JobService(self._pool).set_progress(self.job_id, fraction)
        await self.heartbeat()

    async def heartbeat(self) -> None:
        await self._pool.execute(sql.JOB_HEARTBEAT, self.job_id, self._worker_id)
