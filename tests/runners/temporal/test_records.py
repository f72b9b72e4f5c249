"""What the Temporal engine records, against the real dev server and PostgreSQL: a job's run time
is its handler's, whatever waits in the task queue; an attempt delivered twice (Temporal delivers
activities at least once) is recorded once, and a recorded success is not run again."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

import asyncpg
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from jobsight.runners import HandlerRegistry, RetryPolicy
from jobsight.runners.service import JobService
from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings
from jobsight.runners.temporal import types as t
from jobsight.runners.temporal.activities import JobActivities
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000eec0d")
HANDLER_S = 1.0


async def test_run_time_is_the_handlers_whatever_the_backlog(
    conn: asyncpg.Connection, migrated_db: str, temporal_address: str
) -> None:
    """Eight 1 s jobs on a worker that runs two at a time: each row's run time is about its
    handler's 1 s, and the row is completed when its handler ends, not after a finishing step
    that waited behind the backlog of other handlers."""
    registry = HandlerRegistry()

    @registry.handler("render-report")
    async def render(ctx, data):  # type: ignore[no-untyped-def]
        await asyncio.sleep(HANDLER_S)

    settings = TemporalSettings(address=temporal_address, task_queue=f"rt-{uuid.uuid4().hex[:8]}",
                                max_concurrent_activities=2)  # fmt: skip
    runner = TemporalJobRunner(migrated_db, registry, settings)
    await runner.start()
    try:
        jobs = [await runner.schedule_job("render-report", {}, tenant=TENANT) for _ in range(8)]
        done = "SELECT count(*) = 8 FROM jobs WHERE status = 'completed'"
        await eventually(lambda: conn.fetchval(done), 60)
        rows = await conn.fetch(
            """SELECT j.finished_at - j.started_at AS run, j.finished_at - d.finished_at AS lag
               FROM jobs j JOIN job_details d ON d.job_id = j.job_id AND d.status = 'completed'
               WHERE j.job_id = ANY($1::uuid[])""",
            [job.job_id for job in jobs],
        )
        assert len(rows) == 8
        runs = sorted(r["run"].total_seconds() for r in rows)
        assert runs[0] >= HANDLER_S and runs[-1] < HANDLER_S + 0.5, runs
        assert all(r["lag"] == timedelta(0) for r in rows)  # the row's finish is the attempt's
    finally:
        await runner.stop()


async def test_an_attempt_delivered_twice_is_recorded_once(
    conn: asyncpg.Connection, migrated_db: str, temporal_address: str
) -> None:
    """The same attempt delivered again after its success was recorded (the server lost the
    acknowledgement), then a later attempt: the handler ran once, one completed attempt row."""
    registry = HandlerRegistry()
    calls: list[str] = []

    @registry.handler("credit-reconciliation", retry=RetryPolicy(max_attempts=3))
    async def reconcile(ctx, data):  # type: ignore[no-untyped-def]
        calls.append(ctx.idempotency_key)

    pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=2)
    client = await Client.connect(temporal_address)
    try:
        service = JobService(pool)
        job = await service.create_job(tenant=TENANT, job_name="credit-reconciliation",
                                       metadata={}, runner_type="temporal")  # fmt: skip
        activities = JobActivities(pool, registry, client, "rel-1")
        run = t.RunInput(str(job.job_id), "credit-reconciliation", str(TENANT), {}, "wf", "run", 3)
        env = ActivityEnvironment(client)
        env.info = replace(env.info, attempt=1, heartbeat_timeout=timedelta(seconds=30))
        await env.run(activities.run_handler, run)
        await env.run(activities.run_handler, run)  # the same attempt again
        env.info = replace(env.info, attempt=2)
        await env.run(activities.run_handler, run)  # a retry Temporal started
        assert calls == [str(job.job_id)]  # ran once; its key is the job's
        details = await conn.fetch(
            "SELECT status::text, attempt FROM job_details WHERE job_id = $1", job.job_id
        )
        assert [(d["status"], d["attempt"]) for d in details] == [("completed", 1)]
        row = await conn.fetchrow("SELECT status::text, attempts FROM jobs WHERE job_id = $1",
                                  job.job_id)  # fmt: skip
        assert (row["status"], row["attempts"]) == ("completed", 1)
    finally:
        await pool.close()


async def test_a_failed_attempt_reported_twice_keeps_one_row(
    conn: asyncpg.Connection, migrated_db: str
) -> None:
    """Reports of one attempt replace each other (a completed one is kept): one row each."""
    from datetime import UTC, datetime

    from jobsight.runners.service import Attempt
    from jobsight.runners.status import JobStatus

    pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=2)
    try:
        service = JobService(pool)
        job = await service.create_job(tenant=TENANT, job_name="sync", metadata={},
                                       runner_type="temporal")  # fmt: skip
        await service.update_status(job.job_id, JobStatus.PROCESSING, attempts=1)
        now = datetime.now(UTC)
        failed = Attempt(1, JobStatus.FAILED, now, now, "boom", "rel-1")
        await asyncio.gather(*(service.record_attempt(job.job_id, tenant=TENANT, attempt=failed)
                               for _ in range(5)))  # fmt: skip
        ok = Attempt(2, JobStatus.COMPLETED, now, now, None, "rel-1")
        statuses = await asyncio.gather(*(
            service.record_attempt(job.job_id, tenant=TENANT, attempt=ok, finish=True)
            for _ in range(5)))  # fmt: skip
        assert set(statuses) == {JobStatus.COMPLETED}
        late = Attempt(2, JobStatus.FAILED, now, now, "late report", "rel-1")
        await service.record_attempt(job.job_id, tenant=TENANT, attempt=late, finish=True)
        details = await conn.fetch(
            "SELECT status::text, attempt, error FROM job_details WHERE job_id = $1"
            " ORDER BY attempt", job.job_id,
        )  # fmt: skip
        assert [(d["status"], d["attempt"], d["error"]) for d in details] == [
            ("failed", 1, "boom"), ("completed", 2, None)
        ]  # fmt: skip
        status = await conn.fetchval("SELECT status::text FROM jobs WHERE job_id = $1", job.job_id)
        assert status == "completed"
    finally:
        await pool.close()
