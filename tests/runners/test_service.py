"""JobService against real PostgreSQL: every transition, each validation error, detail rows."""

from __future__ import annotations

import itertools
import uuid

import asyncpg
import pytest

from jobsight.runners import IllegalTransitionError, JobNotFoundError, JobStatus, ValidationError
from jobsight.runners.service import JobService

S = JobStatus
# The lifecycle, written out independently of runners/status.py: (from, to) pairs that are legal.
LEGAL = {
    (S.PENDING, S.PENDING),
    (S.PENDING, S.QUEUED),
    (S.PENDING, S.PROCESSING),
    (S.PENDING, S.ACTIVE),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.CANCELLED),
    (S.QUEUED, S.QUEUED),
    (S.QUEUED, S.PROCESSING),
    (S.QUEUED, S.ACTIVE),
    (S.QUEUED, S.FAILED),
    (S.QUEUED, S.CANCELLED),
    (S.PROCESSING, S.PROCESSING),
    (S.PROCESSING, S.QUEUED),
    (S.PROCESSING, S.COMPLETED),
    (S.PROCESSING, S.FAILED),
    (S.PROCESSING, S.CANCELLED),
    (S.ACTIVE, S.ACTIVE),
    (S.ACTIVE, S.QUEUED),
    (S.ACTIVE, S.COMPLETED),
    (S.ACTIVE, S.FAILED),
    (S.ACTIVE, S.CANCELLED),
}
TENANT = uuid.UUID("6f1f2b4e-0000-4000-8000-000000000001")


async def _job_in(db: asyncpg.Connection, status: JobStatus) -> uuid.UUID:
    """A job row put straight into `status`, as any engine (or older code) may have left it."""
    return await db.fetchval(
        "INSERT INTO jobs (tenant, type, status, user_id) VALUES ($1, 'cleanup', $2, $1)"
        " RETURNING job_id",
        TENANT,
        str(status),
    )


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
async def test_transition(db: asyncpg.Connection, current: JobStatus, target: JobStatus) -> None:
    service = JobService(db)
    job_id = await _job_in(db, current)
    if (current, target) in LEGAL:
        job = await service.update_status(job_id, target, tenant=TENANT)
        assert job.status == target
        assert (job.finished_at is not None) == (target in {S.COMPLETED, S.FAILED, S.CANCELLED})
        assert (job.started_at is not None) == (target in {S.PROCESSING, S.ACTIVE})
    else:
        with pytest.raises(IllegalTransitionError) as err:
            await service.update_status(job_id, target)
        assert (err.value.current, err.value.requested) == (current, target)
        assert (await service.get_job(job_id)).status == current  # untouched


async def test_lifecycle_stamps_and_attempts(db: asyncpg.Connection) -> None:
    service = JobService(db)
    job = await service.create_job(
        tenant=TENANT,
        job_name="generate-invoice",
        metadata={"invoice": 7},
        runner_type="pgqueue",
        external_id="q-1",
    )
    assert (job.status, job.attempts, job.metadata, job.external_id) == (
        S.QUEUED,
        0,
        {"invoice": 7},
        "q-1",
    )
    running = await service.update_status(
        job.job_id, S.PROCESSING, attempts=1, worker_version="1.2.3"
    )
    retry = await service.update_status(job.job_id, S.QUEUED, error="boom")
    again = await service.update_status(job.job_id, S.PROCESSING, attempts=2)
    assert again.started_at == running.started_at  # the first start is kept
    assert retry.error == "boom" and again.worker_version == "1.2.3"
    await service.set_progress(job.job_id, 0.5)
    assert (await service.get_job(job.job_id)).progress == 0.5
    done = await service.update_status(job.job_id, S.COMPLETED)
    assert done.finished_at is not None and done.attempts == 2
    await service.set_progress(job.job_id, 0.9)  # ignored once finished
    assert (await service.get_job(job.job_id)).progress == 0.5
    with pytest.raises(IllegalTransitionError):
        await service.update_status(job.job_id, S.QUEUED)


async def test_unknown_job_and_wrong_tenant(db: asyncpg.Connection) -> None:
    service = JobService(db)
    with pytest.raises(JobNotFoundError):
        await service.update_status(uuid.uuid4(), S.PROCESSING)
    job = await service.create_job(tenant=TENANT, job_name="x", metadata={}, runner_type="pgqueue")
    with pytest.raises(JobNotFoundError):
        await service.get_job(job.job_id, tenant=uuid.uuid4())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tenant": "not-a-uuid"}, "tenant"),
        ({"tenant": 42}, "tenant"),
        ({"job_name": ""}, "job_name"),
        ({"job_name": "   "}, "job_name"),
        ({"job_name": "x" * 129}, "job_name"),
        ({"job_name": "tab\tname"}, "job_name"),
        ({"metadata": {"when": object()}}, "metadata"),
        ({"metadata": {"n": float("nan")}}, "metadata"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": {"s": "\x00"}}, "metadata"),
        ({"metadata": {"blob": "x" * 300_000}}, "metadata"),
        ({"user_id": "nope"}, "user_id"),
        ({"status": S.COMPLETED}, "status"),
        ({"runner_type": ""}, "runner_type"),
    ],
)
async def test_create_job_validation(db: asyncpg.Connection, kwargs: dict, field: str) -> None:
    marker = f"validation-{uuid.uuid4().hex[:8]}"
    args = {"tenant": TENANT, "job_name": marker, "metadata": {}, "runner_type": "pgqueue"}
    args.update(kwargs)
    with pytest.raises(ValidationError) as err:
        await JobService(db).create_job(**args)
    assert err.value.field == field and field in str(err.value)
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE type = $1", marker) == 0


async def test_other_validation_errors(db: asyncpg.Connection) -> None:
    service = JobService(db, max_metadata_bytes=64)
    with pytest.raises(ValidationError, match=r"metadata: is 7[0-9] bytes"):
        await service.create_job(
            tenant=TENANT, job_name="x", metadata={"k": "v" * 64}, runner_type="pgqueue"
        )
    job = await service.create_job(tenant=TENANT, job_name="x", metadata={}, runner_type="pgqueue")
    for bad in (1.5, -0.1, float("inf"), True):
        with pytest.raises(ValidationError, match="progress"):
            await service.set_progress(job.job_id, bad)
    with pytest.raises(ValidationError, match="attempts"):
        await service.update_status(job.job_id, S.PROCESSING, attempts=-1)
    with pytest.raises(ValidationError, match="job_id"):
        await service.get_job("123")
    with pytest.raises(ValidationError, match="attempt"):
        await service.add_detail(
            job.job_id, tenant=TENANT, step_name="a", status=S.FAILED, attempt=0
        )


async def test_detail_rows(db: asyncpg.Connection) -> None:
    service = JobService(db)
    job = await service.create_job(
        tenant=TENANT, job_name="import", metadata={}, runner_type="temporal"
    )
    first = await service.add_detail(
        job.job_id,
        tenant=TENANT,
        step_name="attempt",
        status=S.FAILED,
        attempt=1,
        error="timeout",
        metadata={"worker": "w1"},
    )
    second = await service.add_detail(
        job.job_id,
        tenant=TENANT,
        step_name="attempt",
        status=S.COMPLETED,
        attempt=2,
        result={"rows": 12},
        worker_version="2.0.0",
    )
    details = await service.get_details(job.job_id)
    assert [d.detail_id for d in details] == [first.detail_id, second.detail_id]
    assert (details[0].status, details[0].error, details[0].metadata) == (
        S.FAILED,
        "timeout",
        {"worker": "w1"},
    )
    assert (details[1].result, details[1].worker_version) == ({"rows": 12}, "2.0.0")
    assert (
        await db.fetchval(
            "SELECT retry_count FROM job_details WHERE detail_id = $1", second.detail_id
        )
        == 1
    )  # the seed's column follows the attempt number
    with pytest.raises(JobNotFoundError):
        await service.add_detail(uuid.uuid4(), tenant=TENANT, step_name="a", status=S.FAILED)
    with pytest.raises(ValidationError, match="result"):
        await service.add_detail(
            job.job_id, tenant=TENANT, step_name="a", status=S.FAILED, result={1, 2}
        )
