"""TemporalJobRunner against the real Temporal dev server and real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import asyncpg
import pytest

from jobsight.runners import (
    HandlerRegistry,
    JobStatus,
    RetryPolicy,
)
from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings, TemporalUnavailableError
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-00000000face")
MakeRunner = Callable[..., TemporalJobRunner]


@pytest.fixture
async def make_runner(migrated_db: str, temporal_address: str) -> AsyncIterator[MakeRunner]:
    made: list[TemporalJobRunner] = []
    queue = f"test-{uuid.uuid4().hex[:8]}"

    def make(registry: HandlerRegistry, **settings: object) -> TemporalJobRunner:
        values = {"address": temporal_address, "task_queue": queue,
                  "heartbeat_timeout": timedelta(seconds=5), **settings}  # fmt: skip
        runner = TemporalJobRunner(migrated_db, registry, TemporalSettings(**values))
        made.append(runner)
        return runner

    yield make
    for runner in made:
        await runner.stop()


async def status_of(conn: asyncpg.Connection, job_id: uuid.UUID) -> str:
    return await conn.fetchval("SELECT status::text FROM jobs WHERE job_id = $1", job_id)


async def _noop(ctx, data):  # type: ignore[no-untyped-def]
    return None


async def test_rows_carry_the_workflow_run_and_progress(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """What the contract suite cannot ask of every engine: the workflow's run id on the row, and
    progress reported through the workflow."""
    registry = HandlerRegistry()
    seen: list[dict] = []

    @registry.handler("generate-invoice")
    async def invoice(ctx, data):  # type: ignore[no-untyped-def]
        await ctx.report_progress(0.5)
        seen.append(data)

    runner = make_runner(registry)
    await runner.start()
    result = await runner.schedule_job("generate-invoice", {"invoice": 9}, tenant=TENANT)
    await eventually(lambda: _is(conn, result.job_id, "completed"), 20)
    row = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", result.job_id)
    assert row["runner_type"] == "temporal" and row["external_id"] == result.external_id
    assert row["external_run_id"] and row["attempts"] == 1 and row["worker_version"]
    assert row["progress"] == 0.5 and row["started_at"] <= row["finished_at"]
    details = await conn.fetch("SELECT * FROM job_details WHERE job_id = $1", result.job_id)
    assert [(d["status"], d["attempt"]) for d in details] == [("completed", 1)]
    assert seen == [{"invoice": 9}]
    status = await runner.get_job_status(result.job_id)
    assert (status.status, status.progress) == (JobStatus.COMPLETED, 0.5)


async def _is(conn: asyncpg.Connection, job_id: uuid.UUID, status: str) -> bool:
    return await status_of(conn, job_id) == status


async def test_temporal_down_writes_nothing(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    registry.handler("cleanup")(_noop)
    down = make_runner(registry, address="127.0.0.1:1", connect_timeout=timedelta(seconds=2))
    with pytest.raises(TemporalUnavailableError, match=r"cannot reach Temporal at 127\.0\.0\.1:1"):
        await down.schedule_job("cleanup", {}, tenant=TENANT)
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0  # nothing half-written


async def test_workflow_and_activity_spans_join_the_jobs_trace(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the interceptor uses the global provider
    if trace.get_tracer_provider() is not provider:
        pytest.fail("a global tracer provider was set before this test")
    registry = HandlerRegistry()
    registry.handler("invoice_email")(_noop)
    runner = make_runner(registry)
    await runner.start()
    result = await runner.schedule_job("invoice_email", {}, tenant=TENANT)
    await eventually(lambda: _is(conn, result.job_id, "completed"), 20)
    await asyncio.sleep(0.5)  # the last spans end as the workflow completes
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == result.job_id.int]
    names = {s.name for s in spans}
    expected = {
        "StartWorkflow:jobsight.job",
        "RunWorkflow:jobsight.job",
        "StartActivity:jobsight.run_handler",
        "RunActivity:jobsight.run_handler",
    }
    assert expected <= names, names


async def test_status_and_progress_queries_and_cancel_signal(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    from jobsight.runners.temporal import types as t

    registry = HandlerRegistry()
    progressed, cancelled = asyncio.Event(), asyncio.Event()

    @registry.handler("invoice_zip")
    async def zips(ctx, data):  # type: ignore[no-untyped-def]
        await ctx.report_progress(0.4)
        progressed.set()
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner = make_runner(registry)
    await runner.start()
    result = await runner.schedule_job("invoice_zip", {}, tenant=TENANT)
    await asyncio.wait_for(progressed.wait(), 20)
    handle = (await runner.client()).get_workflow_handle(result.external_id or "")

    async def progress_seen() -> bool:
        return await handle.query(t.PROGRESS_QUERY) == 0.4

    await eventually(progress_seen, 10)
    assert await handle.query(t.STATUS_QUERY) == "processing"
    await handle.signal(t.CANCEL_SIGNAL)
    await asyncio.wait_for(cancelled.wait(), 20)
    await eventually(lambda: _is(conn, result.job_id, "cancelled"), 20)


async def test_the_run_id_is_recorded_by_the_first_attempt(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """schedule_job writes the row and starts the workflow, nothing after: a busy worker may
    start, even finish, a job before its scheduler hears back (a late write of the scheduler's
    once put completed rows back to queued). The job's first attempt records the run id."""
    registry = HandlerRegistry()
    registry.handler("cleanup")(_noop)
    runner = make_runner(registry)
    await runner.start()
    ids = [(await runner.schedule_job("cleanup", {}, tenant=TENANT)).job_id for _ in range(3)]
    query = (
        "SELECT status::text AS status, external_run_id FROM jobs WHERE job_id = ANY($1::uuid[])"
    )
    done = "SELECT count(*) = 3 FROM jobs WHERE job_id = ANY($1::uuid[]) AND status = 'completed'"
    await eventually(lambda: conn.fetchval(done, ids), 30, "three jobs completed")
    rows = await conn.fetch(query, ids)
    assert [r["status"] for r in rows] == ["completed"] * 3
    assert all(r["external_run_id"] for r in rows)


async def test_stop_honours_its_grace(conn: asyncpg.Connection, make_runner: MakeRunner):
    """A short grace stops a long handler (its attempt fails as "worker stopped" and another
    worker runs the job again); a long grace lets a running handler finish its attempt."""
    registry = HandlerRegistry()
    started = asyncio.Event()

    @registry.handler("import", retry=RetryPolicy(initial_interval=timedelta(milliseconds=50)))
    async def first_attempt_hangs(ctx, data):  # type: ignore[no-untyped-def]
        started.set()
        if data.get("hang") and ctx.attempt == 1:
            await asyncio.sleep(120)
        await asyncio.sleep(data["seconds"])

    first = make_runner(registry, shutdown_grace=timedelta(seconds=60))
    await first.start()
    job = await first.schedule_job("import", {"seconds": 0, "hang": True}, tenant=TENANT)
    await asyncio.wait_for(started.wait(), 20)
    began = asyncio.get_running_loop().time()
    await first.stop(grace=0.5)
    assert asyncio.get_running_loop().time() - began < 10  # not the 60 s default, nor 120 s
    assert await status_of(conn, job.job_id) in ("processing", "queued")  # handed back
    second = make_runner(registry)
    await second.start()
    await eventually(lambda: _is(conn, job.job_id, "completed"), 30)
    details = await conn.fetch(
        "SELECT status::text, attempt, error FROM job_details WHERE job_id = $1 ORDER BY attempt",
        job.job_id,
    )
    assert [(d["status"], d["attempt"]) for d in details] == [("failed", 1), ("completed", 2)]
    assert "worker stopped" in details[0]["error"]

    started.clear()
    patient = await second.schedule_job("import", {"seconds": 1.5}, tenant=TENANT)
    await eventually(lambda: _is(conn, patient.job_id, "processing"), 20)
    await second.stop(grace=30)
    # The handler finished within the grace: its attempt is recorded completed. The job's final
    # status is the workflow's next activity, which the next worker to poll writes.
    attempts = await conn.fetch(
        "SELECT status::text, attempt FROM job_details WHERE job_id = $1", patient.job_id
    )
    assert [(d["status"], d["attempt"]) for d in attempts] == [("completed", 1)]
    await make_runner(registry).start()
    await eventually(lambda: _is(conn, patient.job_id, "completed"), 30)


async def test_the_workers_build_id_is_the_version_it_records(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """Temporal worker versioning and the canary analysis name a release the same way: the
    version on the jobs rows is the Build ID the worker reports to Temporal."""
    registry = HandlerRegistry()
    registry.handler("noop")(_noop)
    runner = make_runner(registry, worker_version="build-2024.7")
    await runner.start()
    result = await runner.schedule_job("noop", {}, tenant=TENANT)
    await eventually(lambda: _is(conn, result.job_id, "completed"), 20)
    row = await conn.fetchrow("SELECT worker_version FROM jobs WHERE job_id = $1", result.job_id)
    assert row["worker_version"] == "build-2024.7"
    client = await runner.client()
    history = await client.get_workflow_handle(result.external_id).fetch_history()
    completed = [
        e.workflow_task_completed_event_attributes
        for e in history.events
        if e.HasField("workflow_task_completed_event_attributes")
    ]
    build_ids = {c.worker_version.build_id or c.deployment_version.build_id for c in completed}
    assert build_ids == {"build-2024.7"}, [str(c) for c in completed]
