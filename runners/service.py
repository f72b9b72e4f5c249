"""JobService: the `jobs` / `job_details` rows that every engine writes, over asyncpg.

Every method takes an optional `conn`, so that an engine can change its own state and the job row
in one transaction. Inputs are validated before anything is written.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from jobsight.runners.errors import (
    IllegalTransitionError,
    JobNotFoundError,
    ValidationError,
    storable_text,
)
from jobsight.runners.ids import new_job_id
from jobsight.runners.interface import JobStatusInfo
from jobsight.runners.records import ATTEMPT_STEP, JOB_COLUMNS, NEW_JOB_COLUMNS
from jobsight.runners.status import (
    RUNNING,
    JobStatus,
    allowed_from,
    can_transition,
    is_finished,
)
from jobsight.runners.validation import (
    DEFAULT_MAX_METADATA_BYTES,
    check_job_name,
    check_progress,
    check_uuid,
    encode_json,
    encode_payload,
)

SYSTEM_USER = uuid.UUID(int=0)


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job as its engine reports it (see JobService.record_attempt)."""

    number: int
    status: JobStatus
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    worker_version: str | None = None


@dataclass(frozen=True)
class JobRecord:
    tenant: uuid.UUID
    job_id: uuid.UUID
    type: str
    metadata: dict[str, Any]
    status: JobStatus
    created_at: datetime | None
    updated_at: datetime | None
    user_id: uuid.UUID
    runner_type: str
    external_id: str | None
    external_run_id: str | None
    run_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    worker_version: str | None
    progress: float | None
    error: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> JobRecord:
        values = dict(row)
        values["metadata"] = _decode(values["metadata"])
        values["status"] = JobStatus(values["status"])
        values["attempts"] = values["attempts"] or 0
        return cls(**values)


@dataclass(frozen=True)
class JobDetail:
    tenant: uuid.UUID
    detail_id: uuid.UUID
    job_id: uuid.UUID
    step_name: str
    status: JobStatus
    attempt: int | None
    result: Any
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    worker_version: str | None
    metadata: dict[str, Any]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> JobDetail:
        values = dict(row)
        values["status"] = JobStatus(values["status"])
        values["result"] = _decode(values["result"]) if values["result"] is not None else None
        values["metadata"] = _decode(values["metadata"])
        return cls(**values)


def _decode(value: str | None) -> Any:
    return json.loads(value) if value else {}


def _bounded_error(error: str | None) -> str | None:
    return None if error is None else storable_text(error)


class JobService:
    def __init__(
        self,
        db: asyncpg.Pool | asyncpg.Connection,
        *,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
    ) -> None:
        self._db = db
        self.max_metadata_bytes = max_metadata_bytes

    def _conn(self, conn: asyncpg.Connection | None) -> asyncpg.Pool | asyncpg.Connection:
        return conn if conn is not None else self._db

    async def create_job(
        self,
        *,
        tenant: uuid.UUID | str,
        job_name: str,
        metadata: dict[str, Any] | None,
        runner_type: str,
        user_id: uuid.UUID | str | None = None,
        job_id: uuid.UUID | str | None = None,
        status: JobStatus = JobStatus.QUEUED,
        external_id: str | None = None,
        run_at: datetime | None = None,
        conn: asyncpg.Connection | None = None,
        trace_context: str | None = None,
    ) -> JobRecord:
        tenant_id = check_uuid("tenant", tenant)
        name = check_job_name(job_name)
        payload = encode_payload(metadata, "metadata", self.max_metadata_bytes)
        user = SYSTEM_USER if user_id is None else check_uuid("user_id", user_id)
        new_id = new_job_id() if job_id is None else check_uuid("job_id", job_id)
        check_job_name(runner_type, "runner_type")
        if JobStatus(status) not in allowed_from(JobStatus.PROCESSING):
            raise ValidationError("status", f"a new job starts waiting, not {status!r}")
        row = await self._conn(conn).fetchrow(
            f"""INSERT INTO jobs ({NEW_JOB_COLUMNS}, trace_context)
                VALUES ($1, $2, $3, $4::jsonb, $5::job_status, $6, $7, $8, $9, now(), $10)
                RETURNING {JOB_COLUMNS}""",  # noqa: S608 - constant column list
            tenant_id,
            new_id,
            name,
            payload,
            str(status),
            user,
            runner_type,
            external_id,
            run_at,
            trace_context,
        )
        return JobRecord.from_row(row)

    async def update_status(
        self,
        job_id: uuid.UUID | str,
        status: JobStatus | str,
        *,
        tenant: uuid.UUID | str | None = None,
        error: str | None = None,
        attempts: int | None = None,
        worker_version: str | None = None,
        external_run_id: str | None = None,
        finished_at: datetime | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> JobRecord:
        """Moves a job to `status` if its lifecycle allows it, atomically.

        Entering a running status stamps `started_at` (first time only); entering a final status
        stamps `finished_at` (now, or the `finished_at` given: when the work really ended).
        Raises IllegalTransitionError (a finished job never goes back) or JobNotFoundError.
        """
        target = JobStatus(status)
        job = check_uuid("job_id", job_id)
        tenant_id = None if tenant is None else check_uuid("tenant", tenant)
        if attempts is not None and attempts < 0:
            raise ValidationError("attempts", "must not be negative")
        db = self._conn(conn)
        row = await db.fetchrow(
            f"""UPDATE jobs SET
                  status = $3::job_status,
                  updated_at = now(),
                  started_at = CASE WHEN $4 THEN coalesce(started_at, now()) ELSE started_at END,
                  finished_at = CASE WHEN $5 THEN coalesce($11, now()) ELSE finished_at END,
                  error = coalesce($6, error),
                  attempts = coalesce($7, attempts),
                  worker_version = coalesce($8, worker_version),
                  external_run_id = coalesce($9, external_run_id)
                WHERE job_id = $1 AND ($2::uuid IS NULL OR tenant = $2)
                  AND status::text = ANY($10::text[])
                RETURNING {JOB_COLUMNS}""",  # noqa: S608 - constant column list
            job,
            tenant_id,
            str(target),
            target in RUNNING,
            is_finished(target),
            _bounded_error(error),
            attempts,
            worker_version,
            external_run_id,
            [str(s) for s in allowed_from(target)],
            finished_at,
        )
        if row is not None:
            return JobRecord.from_row(row)
        current = await self.get_job(job, tenant=tenant_id, conn=conn)
        raise IllegalTransitionError(job, current.status, target)

    async def set_external_run_id(
        self,
        job_id: uuid.UUID | str,
        run_id: str,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Records the engine's run id without touching the status: the run may already have
        moved the job on (started, even finished) by the time its scheduler hears back."""
        await self._conn(conn).execute(
            "UPDATE jobs SET external_run_id = coalesce(external_run_id, $2) WHERE job_id = $1",
            check_uuid("job_id", job_id),
            run_id,
        )

    async def set_progress(
        self,
        job_id: uuid.UUID | str,
        progress: float,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Records progress on a running job; ignored once the job has finished."""
        value = check_progress(progress)
        await self._conn(conn).execute(
            """UPDATE jobs SET progress = $2, updated_at = now()
               WHERE job_id = $1 AND status::text = ANY($3::text[])""",
            check_uuid("job_id", job_id),
            value,
            [str(s) for s in RUNNING],
        )

    async def add_detail(
        self,
        job_id: uuid.UUID | str,
        *,
        tenant: uuid.UUID | str,
        step_name: str,
        status: JobStatus | str,
        attempt: int | None = None,
        result: Any = None,
        error: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        worker_version: str | None = None,
        metadata: dict[str, Any] | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> JobDetail:
        """Adds one `job_details` row: a step or an attempt of a job."""
        tenant_id = check_uuid("tenant", tenant)
        job = check_uuid("job_id", job_id)
        step = check_job_name(step_name, "step_name")
        if attempt is not None and attempt < 1:
            raise ValidationError("attempt", "must be 1 or more")
        result_json = None
        if result is not None:
            result_json = encode_json(result, "result", self.max_metadata_bytes)
        meta = encode_payload(metadata, "metadata", self.max_metadata_bytes)
        try:
            row = await self._conn(conn).fetchrow(
                """INSERT INTO job_details (tenant, job_id, step_name, status, result,
                        processed_at, retry_count, metadata, attempt, started_at, finished_at,
                        error, worker_version)
                   VALUES ($1, $2, $3, $4::job_status, $5::jsonb, now(), $6, $7::jsonb, $8, $9,
                           $10, $11, $12)
                   RETURNING tenant, detail_id, job_id, step_name, status::text AS status,
                       attempt, result, error, started_at, finished_at, worker_version,
                       metadata""",
                tenant_id,
                job,
                step,
                str(JobStatus(status)),
                result_json,
                max((attempt or 1) - 1, 0),
                meta,
                attempt,
                started_at,
                finished_at,
                _bounded_error(error),
                worker_version,
            )
        except asyncpg.ForeignKeyViolationError:
            raise JobNotFoundError(job) from None
        return JobDetail.from_row(row)

    async def record_attempt(
        self,
        job_id: uuid.UUID | str,
        *,
        tenant: uuid.UUID | str,
        attempt: Attempt,
        finish: bool = False,
    ) -> JobStatus:
        """Records one attempt of a job, once: its `job_details` row is keyed by job and attempt
        number, so an engine that delivers at least once and reports the same attempt again
        writes no second row (a completed attempt is kept; any other takes the later report).
        With `finish`, the job takes the attempt's status as its final one, stamped with the
        attempt's finish time, in the same transaction. Returns the job's status afterwards."""
        tenant_id = check_uuid("tenant", tenant)
        job = check_uuid("job_id", job_id)
        if attempt.number < 1:
            raise ValidationError("attempt", "must be 1 or more")
        if not isinstance(self._db, asyncpg.Pool):
            return await self._record_attempt(self._db, job, tenant_id, attempt, finish)
        async with self._db.acquire() as conn:
            return await self._record_attempt(conn, job, tenant_id, attempt, finish)

    async def _record_attempt(
        self, conn: asyncpg.Connection, job: uuid.UUID, tenant: uuid.UUID, attempt: Attempt,
        finish: bool,
    ) -> JobStatus:  # fmt: skip
        async with conn.transaction():
            # The job's row is locked first: reports of one job are written one after another.
            current = await conn.fetchval(
                "SELECT status::text FROM jobs WHERE tenant = $1 AND job_id = $2 FOR UPDATE",
                tenant, job,
            )  # fmt: skip
            if current is None:
                raise JobNotFoundError(job)
            earlier = await conn.fetchrow(
                """SELECT detail_id, status::text AS status FROM job_details
                   WHERE tenant = $1 AND job_id = $2 AND step_name = $3 AND attempt = $4
                   ORDER BY processed_at LIMIT 1""",
                tenant, job, ATTEMPT_STEP, attempt.number,
            )  # fmt: skip
            if earlier is None:
                await self.add_detail(
                    job, tenant=tenant, step_name=ATTEMPT_STEP, status=attempt.status,
                    attempt=attempt.number, error=attempt.error, started_at=attempt.started_at,
                    finished_at=attempt.finished_at, worker_version=attempt.worker_version,
                    conn=conn,
                )  # fmt: skip
            elif earlier["status"] != JobStatus.COMPLETED:
                await conn.execute(
                    """UPDATE job_details SET status = $3::job_status, error = $4,
                         started_at = $5, finished_at = $6, worker_version = $7,
                         processed_at = now()
                       WHERE tenant = $1 AND detail_id = $2""",
                    tenant, earlier["detail_id"], str(attempt.status),
                    _bounded_error(attempt.error), attempt.started_at, attempt.finished_at,
                    attempt.worker_version,
                )  # fmt: skip
            if not finish or not can_transition(current, attempt.status):
                return JobStatus(current)
            done = await self.update_status(
                job, attempt.status, tenant=tenant, error=attempt.error,
                finished_at=attempt.finished_at, conn=conn,
            )  # fmt: skip
            return done.status

    async def get_job(
        self,
        job_id: uuid.UUID | str,
        *,
        tenant: uuid.UUID | str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> JobRecord:
        job = check_uuid("job_id", job_id)
        tenant_id = None if tenant is None else check_uuid("tenant", tenant)
        row = await self._conn(conn).fetchrow(
            f"""SELECT {JOB_COLUMNS} FROM jobs
                WHERE job_id = $1 AND ($2::uuid IS NULL OR tenant = $2)""",  # noqa: S608 - constant column list
            job,
            tenant_id,
        )
        if row is None:
            raise JobNotFoundError(job)
        return JobRecord.from_row(row)

    async def status_info(self, job_id: uuid.UUID | str, runner_type: str) -> JobStatusInfo:
        """A runner's view of one of its jobs; JobNotFoundError when another engine ran it."""
        job = await self.get_job(job_id)
        if job.runner_type != runner_type:
            raise JobNotFoundError(job_id)
        return JobStatusInfo(job.status, job.progress, job.error, job.metadata)

    async def get_details(
        self,
        job_id: uuid.UUID | str,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[JobDetail]:
        rows = await self._conn(conn).fetch(
            """SELECT tenant, detail_id, job_id, step_name, status::text AS status, attempt,
                   result, error, started_at, finished_at, worker_version, metadata
               FROM job_details WHERE job_id = $1
               ORDER BY attempt NULLS FIRST, processed_at""",
            check_uuid("job_id", job_id),
        )
        return [JobDetail.from_row(row) for row in rows]
