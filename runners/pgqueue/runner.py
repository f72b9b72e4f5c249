"""PgQueueJobRunner: the JobRunner interface over the pgqueue engine."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from jobsight.runners import connections
from jobsight.runners.base import RecurringJob, RunnerBase
from jobsight.runners.errors import ValidationError
from jobsight.runners.interface import (
    RetryPolicy,
    ScheduleOptions,
    ScheduleResult,
)
from jobsight.runners.pgqueue import sql
from jobsight.runners.pgqueue.sending import JobSettings, send
from jobsight.runners.pgqueue.settings import PgQueueSettings
from jobsight.runners.pgqueue.worker import Worker
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.validation import check_job_name, check_uuid


def settings_of(row: Mapping[str, Any]) -> JobSettings:
    """A queued job's own retry policy, attempt timeout and dead letter, from its row."""
    retry = RetryPolicy(
        max_attempts=row["max_attempts"],
        backoff_coefficient=max(1.0, row["retry_backoff"]),
        initial_interval=timedelta(milliseconds=row["retry_delay_ms"]),
        max_interval=timedelta(milliseconds=row["retry_delay_max_ms"]),
    )
    expire = row["expire_ms"]
    return retry, None if expire is None else timedelta(milliseconds=expire), row["dead_letter"]


class PgQueueJobRunner(RunnerBase[PgQueueSettings]):
    """Schedules jobs on the Postgres queue; `start()` also works them for registered handlers.

    A producer that only schedules never needs `start()`: the pool opens on first use.
    """

    runner_type = "pgqueue"

    def __init__(
        self,
        database_url: str,
        registry: HandlerRegistry | None = None,
        settings: PgQueueSettings | None = None,
        *,
        work: bool = True,
    ) -> None:
        super().__init__(database_url, registry, settings, work=work)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._worker: Worker | None = None
        self._worker_connections: asyncpg.Pool | None = None

    @classmethod
    def default_settings(cls) -> PgQueueSettings:
        return PgQueueSettings()

    # --- connections ------------------------------------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        return await connections.connect(
            self._url, server_settings=self._server_settings(), command_timeout=self._command_s()
        )

    def _command_s(self) -> float:
        return connections.command_timeout(self.settings.statement_timeout.total_seconds())

    def _server_settings(self, **extra: str) -> dict[str, str]:
        timeout_ms = int(self.settings.statement_timeout.total_seconds() * 1000)
        return {"statement_timeout": str(timeout_ms), "application_name": "jobsight-pgqueue",
                **extra}  # fmt: skip

    async def _create_pool(
        self, settings: dict[str, str] | None = None, **options: Any
    ) -> asyncpg.Pool:
        return await connections.create_pool(
            self._url,
            tables=("jobs", "pgqueue.job"),
            min_size=1,
            max_size=self.settings.pool_size,
            command_timeout=self._command_s(),
            server_settings=self._server_settings(**(settings or {})),
            **options,
        )

    async def pool(self) -> asyncpg.Pool:
        """Connections for sending, cancelling and reading jobs (prepared statements, reused)."""
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await self._create_pool()
        return self._pool

    async def _worker_pool(self) -> asyncpg.Pool:
        """The worker's connections, which plan every statement for its own arguments
        (statement_cache_size=0: unnamed statements). Its statements take arrays of 1 to
        thousands of ids, and a generic plan, which cannot see how many, joins them to scans of
        whole tables. Forcing custom plans for the session instead (plan_cache_mode) would also
        re-plan the foreign-key check each job_details row runs, about a sixth of the server's
        time per job; unnamed statements on every connection would add a round trip and a
        parse to each single send.

        They also plan without sorts where another way exists (enable_sort off): FETCH then
        reads the first rows of the fetch index, in its order, whatever the statistics say.
        With statistics taken while the queue was nearly empty (a burst after a quiet spell, a
        table not analysed yet), the planner expects a handful of waiting jobs and reads and
        sorts every one of them on each fetch instead: 48 ms against 1.7 ms to take 1,000 of
        60,000 waiting jobs. The worker's other ordered reads (due schedules, retention) have
        an index in their order too."""
        return await self._create_pool({"enable_sort": "off"}, statement_cache_size=0)

    # --- JobRunner --------------------------------------------------------------------------

    async def schedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
        user_id: uuid.UUID | str | None = None,
    ) -> ScheduleResult:
        [result] = await self.schedule_many(
            job_name, [data], tenant=tenant, options=options, user_id=user_id
        )
        return result

    async def schedule_many(
        self,
        job_name: str,
        items: list[dict[str, Any]],
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
        user_id: uuid.UUID | str | None = None,
    ) -> list[ScheduleResult]:
        """Queues many jobs of one name in one round trip (all or nothing on bad input)."""
        return await send(
            await self.pool(),
            self.registry,
            job_name,
            tenant,
            items,
            options=options,
            user_id=user_id,
            max_payload_bytes=self.settings.max_payload_bytes,
        )

    async def create_schedule(self, recurring: RecurringJob) -> ScheduleResult:
        """A row of pgqueue.schedule; the maintainer fires it when due."""
        job, schedule_id = recurring.job, uuid.uuid4()
        first = recurring.recurrence.next_after(datetime.now(UTC))
        pool = await self.pool()
        # Each firing sends the payload as PostgreSQL stores it, where numbers are written out
        # in full (1e308 takes 309 digits): the limit applies to that form.
        stored = await pool.fetchval(sql.STORED_SIZE, job.payload)
        limit = self.settings.max_payload_bytes
        if stored > limit:
            raise ValidationError(
                "data", f"is {stored} bytes as stored (numbers written out), over {limit}"
            )
        await pool.execute(
            sql.INSERT_SCHEDULE, schedule_id, job.config.name, job.tenant, job.user, job.payload,
            recurring.spec, first,
        )  # fmt: skip
        return ScheduleResult(job_id=schedule_id, external_id=f"schedule:{schedule_id}")

    async def cancel_job(self, job_id: uuid.UUID | str) -> bool:
        """Cancels a waiting job (it never runs), a running one (its handler is cancelled), or a
        recurring schedule (no further runs). False when it had already finished."""
        target = check_uuid("job_id", job_id)
        pool = await self.pool()
        rows = await pool.fetch(sql.CANCEL, target)
        if rows:
            return True
        status = await pool.execute(
            "UPDATE pgqueue.schedule SET enabled = false WHERE id = $1 AND enabled", target
        )
        return str(status).endswith(" 1")

    async def retry_job(self, job_id: uuid.UUID | str) -> ScheduleResult:
        """Runs a failed job again as a fresh job (same name, tenant and data) linked to it by
        `retry_of`; the failed job's own rows stay as they are (a finished job never moves). Its
        retry policy, timeout and dead letter are the handler's when this runner has it, else
        the failed job's own (an operator's console holds no handlers)."""
        target = check_uuid("job_id", job_id)
        pool = await self.pool()
        row = await pool.fetchrow(sql.FAILED_JOB, target)
        if row is None:
            raise ValidationError("job_id", f"{target} is not a failed pgqueue job")
        [result] = await send(
            pool,
            self.registry,
            row["name"],
            row["tenant"],
            [json.loads(row["data"])],
            user_id=row["user_id"],
            max_payload_bytes=self.settings.max_payload_bytes,
            retry_of=target,
            inherited=settings_of(row),
        )
        return result

    async def pause(self, job_name: str, by: str = "") -> bool:
        """Workers stop fetching `job_name`'s jobs (those running finish); True if it was not
        paused already. Jobs keep being accepted and wait."""
        status = await (await self.pool()).execute(sql.PAUSE, check_job_name(job_name), by)
        return str(status).endswith(" 1")

    async def resume(self, job_name: str) -> bool:
        """Workers fetch `job_name`'s jobs again, at once; True if it was paused."""
        return bool(await (await self.pool()).fetchval(sql.RESUME, check_job_name(job_name)))

    async def paused(self) -> dict[str, datetime]:
        """The paused job names and since when."""
        return {r["name"]: r["paused_at"] for r in await (await self.pool()).fetch(sql.PAUSED)}

    async def start(self) -> None:
        """Starts a worker for every registered handler (unless built with work=False)."""
        if not (self._work and len(self.registry)):
            await self.pool()  # a producer connects now: a bad URL fails here, not at a send
        elif self._worker is None:
            pool = await self._worker_pool()
            worker = Worker(pool, self._connect, self.registry, self.settings)
            try:
                await worker.start()
            except BaseException:
                await pool.close()
                raise
            self._worker, self._worker_connections = worker, pool

    async def stop_worker(self, grace: float) -> None:
        if self._worker is not None:
            await self._worker.stop(grace)
            self._worker = None

    async def close(self) -> None:
        for pool in (self._worker_connections, self._pool):
            if pool is not None:
                await pool.close()
        self._worker_connections = self._pool = None

    @property
    def worker(self) -> Worker | None:
        return self._worker
