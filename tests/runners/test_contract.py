"""One behaviour suite for every engine: pgqueue, temporal, and hybrid routing (where
generate-invoice goes to Temporal and everything else to pgqueue), all built by create_runner
against the real PostgreSQL and Temporal dev server.

Not here, because one engine cannot offer it: priority (Temporal has no per-job priority order
that maps to pgqueue's; tested in test_pgqueue)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from jobsight.runners import (
    HandlerRegistry,
    JobRunner,
    JobStatus,
    RetryPolicy,
    ScheduleOptions,
    UnknownJobError,
    ValidationError,
)
from jobsight.runners.factory import RunnerSettings, create_runner
from jobsight.runners.pgqueue import PgQueueSettings
from jobsight.runners.temporal import TemporalSettings
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000c0f0e")
ROUTED = "generate-invoice"  # in hybrid mode: the one job name that goes to Temporal
Start = Callable[[HandlerRegistry], Awaitable[JobRunner]]


def engine_of(mode: str, job_name: str) -> str:
    if mode == "hybrid":
        return "temporal" if job_name == ROUTED else "pgqueue"
    return mode


@pytest.fixture(params=["pgqueue", "temporal", "hybrid"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def start(mode: str, migrated_db: str, temporal_address: str) -> AsyncIterator[Start]:
    runners: list[JobRunner] = []

    async def make(registry: HandlerRegistry) -> JobRunner:
        settings = RunnerSettings(
            database_url=migrated_db,
            runner_type="pgqueue" if mode == "hybrid" else mode,
            routes=((ROUTED, "temporal"), ("*", "pgqueue")) if mode == "hybrid" else (),
            engine_options={
                "pgqueue": PgQueueSettings(
                    poll_interval=timedelta(milliseconds=100),
                    maintenance_interval=timedelta(milliseconds=100),
                ),
                "temporal": TemporalSettings(
                    address=temporal_address, task_queue=f"conf-{uuid.uuid4().hex[:8]}",
                    heartbeat_timeout=timedelta(seconds=5),
                ),
            },
        )  # fmt: skip
        runner = await create_runner(settings, registry)
        await runner.start()
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.stop()


async def status(conn: asyncpg.Connection, job_id: uuid.UUID) -> str | None:
    return await conn.fetchval("SELECT status::text FROM jobs WHERE job_id = $1", job_id)


def reached(conn: asyncpg.Connection, job_id: uuid.UUID, wanted: str) -> Callable:
    async def check() -> bool:
        return await status(conn, job_id) == wanted

    return check


async def _noop(ctx, data):  # type: ignore[no-untyped-def]
    return None


async def test_immediate_job_and_row_shape(mode: str, start: Start, conn: asyncpg.Connection):
    registry = HandlerRegistry()
    seen: list[dict] = []

    @registry.handler(ROUTED)
    async def invoice(ctx, data):  # type: ignore[no-untyped-def]
        assert ctx.job_name == ROUTED and ctx.tenant == TENANT and ctx.attempt == 1
        seen.append(data)

    registry.handler("cleanup")(_noop)
    runner = await start(registry)
    routed = await runner.schedule_job(ROUTED, {"invoice": 3}, tenant=TENANT)
    other = await runner.schedule_job("cleanup", {}, tenant=TENANT)
    for result, name in ((routed, ROUTED), (other, "cleanup")):
        await eventually(reached(conn, result.job_id, "completed"), 20)
        row = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", result.job_id)
        assert row["runner_type"] == engine_of(mode, name)
        assert row["external_id"] == result.external_id and row["type"] == name
        assert row["attempts"] == 1 and row["worker_version"]
        assert row["started_at"] <= row["finished_at"] and row["tenant"] == TENANT
        details = await conn.fetch("SELECT * FROM job_details WHERE job_id = $1", result.job_id)
        assert [(d["status"], d["attempt"], d["step_name"]) for d in details] == [
            ("completed", 1, "attempt")
        ]
    assert seen == [{"invoice": 3}]


async def test_job_at_a_time(start: Start, conn: asyncpg.Connection):
    registry = HandlerRegistry()
    registry.handler(ROUTED)(_noop)
    runner = await start(registry)
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    result = await runner.schedule_job_at(ROUTED, {}, due, tenant=TENANT)
    await asyncio.sleep(0.8)
    assert await status(conn, result.job_id) == "queued"
    await eventually(reached(conn, result.job_id, "completed"), 20)
    started = await conn.fetchval("SELECT started_at FROM jobs WHERE job_id = $1", result.job_id)
    assert started >= due - timedelta(milliseconds=50)


async def test_recurring_job(mode: str, start: Start, conn: asyncpg.Connection):
    registry = HandlerRegistry()
    registry.handler(ROUTED)(_noop)
    runner = await start(registry)
    schedule = await runner.schedule_recurring_job(ROUTED, {"n": 1}, "1 second", tenant=TENANT)
    done = "SELECT count(*) >= 2 FROM jobs WHERE status = 'completed' AND type = $1"
    await eventually(lambda: conn.fetchval(done, ROUTED), 30)
    assert await runner.cancel_job(schedule.job_id)
    rows = await conn.fetch("SELECT * FROM jobs WHERE status = 'completed'")
    assert all(r["runner_type"] == engine_of(mode, ROUTED) for r in rows)
    assert len({r["job_id"] for r in rows}) == len(rows)  # each run its own row
    if engine_of(mode, ROUTED) == "temporal":  # ...and its own workflow run
        assert len({r["external_run_id"] for r in rows if r["external_run_id"]}) == len(rows)


async def test_cancel_queued_job(start: Start, conn: asyncpg.Connection):
    registry = HandlerRegistry()
    ran: list[int] = []

    @registry.handler(ROUTED)
    async def never(ctx, data):  # type: ignore[no-untyped-def]
        ran.append(1)

    runner = await start(registry)
    later = datetime.now(UTC) + timedelta(seconds=2)
    result = await runner.schedule_job_at(ROUTED, {}, later, tenant=TENANT)
    assert await runner.cancel_job(result.job_id)
    await eventually(reached(conn, result.job_id, "cancelled"), 20)
    await asyncio.sleep(2.5)
    assert ran == [] and await status(conn, result.job_id) == "cancelled"


async def test_cancel_running_job_and_progress(start: Start, conn: asyncpg.Connection):
    registry = HandlerRegistry()
    progressed, cancelled = asyncio.Event(), asyncio.Event()

    @registry.handler(ROUTED)
    async def long_job(ctx, data):  # type: ignore[no-untyped-def]
        await ctx.report_progress(0.25)
        progressed.set()
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner = await start(registry)
    result = await runner.schedule_job(ROUTED, {}, tenant=TENANT)
    await asyncio.wait_for(progressed.wait(), 20)
    info = await runner.get_job_status(result.job_id)
    assert (info.status, info.progress) == (JobStatus.PROCESSING, 0.25)
    assert await runner.cancel_job(result.job_id)
    await asyncio.wait_for(cancelled.wait(), 20)  # the handler itself was cancelled
    await eventually(reached(conn, result.job_id, "cancelled"), 20)
    assert not await runner.cancel_job(result.job_id)


async def test_retry_with_backoff(start: Start, conn: asyncpg.Connection):
    registry = HandlerRegistry()
    policy = RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=300),
                         backoff_coefficient=2)  # fmt: skip

    @registry.handler(ROUTED, retry=policy)
    async def flaky(ctx, data):  # type: ignore[no-untyped-def]
        if ctx.attempt < 3:
            raise ConnectionError(f"try {ctx.attempt}")

    runner = await start(registry)
    result = await runner.schedule_job(ROUTED, {}, tenant=TENANT)
    await eventually(reached(conn, result.job_id, "completed"), 30)
    details = await conn.fetch(
        "SELECT * FROM job_details WHERE job_id = $1 ORDER BY attempt", result.job_id
    )
    assert [(d["attempt"], d["status"]) for d in details] == [
        (1, "failed"), (2, "failed"), (3, "completed"),
    ]  # fmt: skip
    assert details[0]["error"] == "ConnectionError: try 1"
    for earlier, later, attempt in ((details[0], details[1], 1), (details[1], details[2], 2)):
        waited = later["started_at"] - earlier["finished_at"]
        assert waited >= policy.delay_after(attempt) - timedelta(milliseconds=50), waited


async def test_timeout_and_handler_error(start: Start, conn: asyncpg.Connection):
    registry = HandlerRegistry()
    once = RetryPolicy(max_attempts=1)

    @registry.handler(ROUTED, retry=once, timeout=timedelta(milliseconds=500))
    async def hangs(ctx, data):  # type: ignore[no-untyped-def]
        await asyncio.sleep(60)

    @registry.handler("import", retry=once)
    async def broken(ctx, data):  # type: ignore[no-untyped-def]
        raise ValueError("bad file")

    runner = await start(registry)
    slow = await runner.schedule_job(ROUTED, {}, tenant=TENANT)
    bad = await runner.schedule_job("import", {}, tenant=TENANT)
    await eventually(reached(conn, slow.job_id, "failed"), 30)
    await eventually(reached(conn, bad.job_id, "failed"), 30)
    assert (await runner.get_job_status(bad.job_id)).error == "ValueError: bad file"
    error = await conn.fetchval("SELECT error FROM job_details WHERE job_id = $1", slow.job_id)
    assert error == "TimeoutError: no result within 0.5 s"


async def test_singleton_key(start: Start, conn: asyncpg.Connection):
    registry = HandlerRegistry()
    registry.handler(ROUTED)(_noop)
    runner = await start(registry)
    key = ScheduleOptions(singleton_key=f"tenant-{uuid.uuid4().hex[:8]}")  # ids span the namespace
    later = datetime.now(UTC) + timedelta(seconds=30)
    first = await runner.schedule_job_at(ROUTED, {"a": 1}, later, tenant=TENANT, options=key)
    again = await runner.schedule_job(ROUTED, {"a": 2}, tenant=TENANT, options=key)
    assert again.duplicate and again.job_id == first.job_id and not first.duplicate
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 1
    assert await runner.cancel_job(first.job_id)


async def test_refusals_write_nothing(start: Start, conn: asyncpg.Connection):
    registry = HandlerRegistry()
    registry.handler(ROUTED)(_noop)
    runner = await start(registry)
    with pytest.raises(UnknownJobError):
        await runner.schedule_job("no-such-job", {}, tenant=TENANT)
    with pytest.raises(ValidationError, match="data"):
        await runner.schedule_job(ROUTED, {"when": datetime.now(UTC)}, tenant=TENANT)
    with pytest.raises(ValidationError, match="data"):
        await runner.schedule_job(ROUTED, {"blob": "x" * 300_000}, tenant=TENANT)
    with pytest.raises(ValidationError, match="tenant"):
        await runner.schedule_job(ROUTED, {}, tenant="acme")
    with pytest.raises(ValidationError, match="interval"):
        await runner.schedule_recurring_job(ROUTED, {}, "every tuesday", tenant=TENANT)
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
