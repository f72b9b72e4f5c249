"""pgqueue against real PostgreSQL: one test per semantic, each on a fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from jobsight.runners import (
    HandlerRegistry,
    JobStatus,
    RetryPolicy,
    ScheduleOptions,
    UnknownJobError,
    ValidationError,
)
from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings
from jobsight.runners.pgqueue.maintenance import Maintainer
from tests.support.pgqueue import disagreements, reachable_for
from tests.support.transitions import (
    illegal_transitions,
    install_status_audit,
    recorded_transitions,
)
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-00000000beef")
FAST = {
    "poll_interval": timedelta(milliseconds=100),
    "maintenance_interval": timedelta(milliseconds=100),
    "heartbeat_interval": timedelta(milliseconds=200),
    "heartbeat_timeout": timedelta(seconds=1),
}
MakeRunner = Callable[..., PgQueueJobRunner]


@pytest.fixture
async def conn(migrated_db: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(migrated_db)
    await install_status_audit(c)
    yield c
    assert await disagreements(c) == []  # after every test: the two tables agree
    assert await illegal_transitions(c) == []  # ...and every status change was allowed
    await c.close()


@pytest.fixture
async def make_runner(migrated_db: str) -> AsyncIterator[MakeRunner]:
    made: list[PgQueueJobRunner] = []

    def make(registry: HandlerRegistry, **settings: object) -> PgQueueJobRunner:
        runner = PgQueueJobRunner(migrated_db, registry, PgQueueSettings(**{**FAST, **settings}))
        made.append(runner)
        return runner

    yield make
    for runner in made:
        await runner.stop(grace=1)


async def count(conn: asyncpg.Connection, query: str, *args: object) -> int:
    return await conn.fetchval(query, *args)


async def test_send_now_runs_and_mirrors_rows(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    seen: list[dict] = []

    @registry.handler("generate-invoice")
    async def invoice(ctx, data):  # type: ignore[no-untyped-def]
        assert ctx.job_name == "generate-invoice" and ctx.tenant == TENANT and ctx.attempt == 1
        await ctx.report_progress(0.5)
        seen.append(data)

    runner = make_runner(registry)
    result = await runner.schedule_job("generate-invoice", {"invoice": 1}, tenant=TENANT)
    assert result.external_id == str(result.job_id) and not result.duplicate
    assert (await runner.get_job_status(result.job_id)).status == JobStatus.QUEUED
    await runner.start()
    await eventually(lambda: count(conn, "SELECT count(*) FROM jobs WHERE status = 'completed'"), 5)
    status = await runner.get_job_status(result.job_id)
    assert (status.status, status.progress, status.metadata) == (
        JobStatus.COMPLETED, 0.5, {"invoice": 1},
    )  # fmt: skip
    row = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", result.job_id)
    assert row["runner_type"] == "pgqueue" and row["attempts"] == 1
    assert row["started_at"] <= row["finished_at"] and row["worker_version"]
    details = await conn.fetch("SELECT * FROM job_details WHERE job_id = $1", result.job_id)
    assert [(d["status"], d["attempt"]) for d in details] == [("completed", 1)]
    assert seen == [{"invoice": 1}]
    # A completed job has left the queue; its jobs and job_details rows are its record.
    assert await count(conn, "SELECT count(*) FROM pgqueue.job WHERE id = $1", result.job_id) == 0


async def test_send_at_time_waits_until_due(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    ran_at: list[datetime] = []

    @registry.handler("expired-credits")
    async def credits(ctx, data):  # type: ignore[no-untyped-def]
        ran_at.append(datetime.now(UTC))

    runner = make_runner(registry)
    await runner.start()
    due = datetime.now(UTC) + timedelta(seconds=1.2)
    result = await runner.schedule_job_at("expired-credits", {}, due, tenant=TENANT)
    row = await conn.fetchrow("SELECT run_at FROM jobs WHERE job_id = $1", result.job_id)
    assert abs((row["run_at"] - due).total_seconds()) < 0.01
    await asyncio.sleep(0.6)
    assert ran_at == []  # not yet due; only the polling fallback can find it later
    await eventually(lambda: asyncio.sleep(0, bool(ran_at)), 3)
    assert ran_at[0] >= due


async def test_recurring_fires_once_per_due_time_with_several_workers(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    registry = HandlerRegistry()
    registry.handler("reconcile-bucket-usage")(_noop)
    first, second = make_runner(registry), make_runner(registry)
    schedule = await first.schedule_recurring_job(
        "reconcile-bucket-usage", {"bucket": "b1"}, "1 second", tenant=TENANT
    )
    assert schedule.external_id == f"schedule:{schedule.job_id}"
    await first.start()
    await second.start()
    fired_so_far = "SELECT count(*) >= 3 FROM pgqueue.job WHERE schedule_id = $1"
    await eventually(lambda: conn.fetchval(fired_so_far, schedule.job_id), 10)
    assert await first.cancel_job(schedule.job_id)  # no further runs
    fired = await conn.fetch(
        """SELECT q.created_at, j.metadata FROM pgqueue.job q
           JOIN jobs j ON j.job_id = q.id WHERE q.schedule_id = $1 ORDER BY q.created_at""",
        schedule.job_id,
    )
    assert 3 <= len(fired) <= 4  # about one a second (first due 1 s after scheduling)
    assert all(json.loads(r["metadata"]) == {"bucket": "b1"} for r in fired)
    # Fire times, not run times: each fire sets the next due time one interval after itself,
    # so two workers never fire the same due time twice.
    gaps = [
        (b["created_at"] - a["created_at"]).total_seconds() for a, b in itertools.pairwise(fired)
    ]
    assert all(gap >= 0.95 for gap in gaps), gaps
    await asyncio.sleep(1.2)
    after = await count(conn, "SELECT count(*) FROM pgqueue.job WHERE schedule_id = $1",
                        schedule.job_id)  # fmt: skip
    assert after == len(fired)
    await eventually(lambda: count(
        conn, "SELECT count(*) = 0 FROM jobs WHERE finished_at IS NULL"), 5)  # fmt: skip


async def test_cron_schedule_next_run(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    registry.handler("createNextTimePeriods")(_noop)
    runner = make_runner(registry)
    schedule = await runner.schedule_recurring_job(
        "createNextTimePeriods", {}, "0 3 * * *", tenant=TENANT
    )
    next_run = await conn.fetchval(
        "SELECT next_run_at FROM pgqueue.schedule WHERE id = $1", schedule.job_id
    )
    assert (next_run.hour, next_run.minute, next_run.second) == (3, 0, 0)
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=1)


async def _noop(ctx, data):  # type: ignore[no-untyped-def]
    return None


async def test_priority_then_oldest_first(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    order: list[str] = []

    @registry.handler("invoice_email")
    async def email(ctx, data):  # type: ignore[no-untyped-def]
        order.append(data["n"])

    runner = make_runner(registry, concurrency=1, batch_size=1)
    for n, priority in [("low-1", 0), ("high-1", 5), ("low-2", 0), ("high-2", 5), ("top", 9)]:
        await runner.schedule_job("invoice_email", {"n": n}, tenant=TENANT,
                                  options=ScheduleOptions(priority=priority))  # fmt: skip
    await runner.start()
    await eventually(lambda: asyncio.sleep(0, len(order) == 5), 5)
    assert order == ["top", "high-1", "high-2", "low-1", "low-2"]


async def test_singleton_key(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    registry.handler("credit-reconciliation")(_noop)
    runner = make_runner(registry)
    key = ScheduleOptions(singleton_key="tenant-1")
    first = await runner.schedule_job("credit-reconciliation", {"a": 1}, tenant=TENANT, options=key)
    again = await runner.schedule_job("credit-reconciliation", {"a": 2}, tenant=TENANT, options=key)
    assert again.duplicate and again.job_id == first.job_id
    assert await count(conn, "SELECT count(*) FROM jobs") == 1
    await runner.start()
    await eventually(lambda: count(conn, "SELECT count(*) FROM jobs WHERE status='completed'"), 5)
    third = await runner.schedule_job("credit-reconciliation", {"a": 3}, tenant=TENANT, options=key)
    assert not third.duplicate and third.job_id != first.job_id  # the key is free once finished


async def test_retries_with_exponential_backoff(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    policy = RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=300),
                         backoff_coefficient=2, max_interval=timedelta(seconds=5))  # fmt: skip

    @registry.handler("asset_import", retry=policy)
    async def flaky(ctx, data):  # type: ignore[no-untyped-def]
        if ctx.attempt < 3:
            raise ConnectionError(f"upstream down (attempt {ctx.attempt})")

    runner = make_runner(registry)
    result = await runner.schedule_job("asset_import", {}, tenant=TENANT)
    await runner.start()
    await eventually(lambda: count(conn, "SELECT count(*) FROM jobs WHERE status='completed'"), 8)
    details = await conn.fetch(
        "SELECT * FROM job_details WHERE job_id = $1 ORDER BY attempt", result.job_id
    )
    assert [(d["attempt"], d["status"]) for d in details] == [
        (1, "failed"), (2, "failed"), (3, "completed"),
    ]  # fmt: skip
    assert details[0]["error"] == "ConnectionError: upstream down (attempt 1)"
    for before, after, attempt in [(details[0], details[1], 1), (details[1], details[2], 2)]:
        waited = after["started_at"] - before["finished_at"]
        assert waited >= policy.delay_after(attempt), (attempt, waited)
        assert waited < policy.delay_after(attempt) + timedelta(seconds=1)
    job = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", result.job_id)
    assert job["attempts"] == 3 and job["status"] == "completed"


async def test_last_failure_goes_to_dead_letter(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    dead: list[dict] = []
    quick = RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=50))

    @registry.handler("import", retry=quick, dead_letter="import-dead")
    async def broken(ctx, data):  # type: ignore[no-untyped-def]
        raise ValueError("bad file")

    @registry.handler("import-dead")
    async def parked(ctx, data):  # type: ignore[no-untyped-def]
        dead.append(data)

    runner = make_runner(registry)
    result = await runner.schedule_job("import", {"url": "s3://x"}, tenant=TENANT)
    await runner.start()
    await eventually(lambda: asyncio.sleep(0, bool(dead)), 5)
    status = await runner.get_job_status(result.job_id)
    assert (status.status, status.error) == (JobStatus.FAILED, "ValueError: bad file")
    assert dead == [{"url": "s3://x"}]
    assert await count(conn, "SELECT attempts FROM pgqueue.job WHERE id = $1", result.job_id) == 2


async def test_timeout_fails_the_attempt(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    quick = RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=50))

    @registry.handler("evaluation", retry=quick, timeout=timedelta(milliseconds=300))
    async def hangs(ctx, data):  # type: ignore[no-untyped-def]
        await asyncio.sleep(60)

    runner = make_runner(registry)
    result = await runner.schedule_job("evaluation", {}, tenant=TENANT)
    await runner.start()
    await eventually(lambda: count(conn, "SELECT count(*) FROM jobs WHERE status='failed'"), 5)
    details = await conn.fetch("SELECT * FROM job_details WHERE job_id = $1", result.job_id)
    assert [d["error"] for d in details] == ["TimeoutError: no result within 0.3 s"] * 2
    assert all(
        timedelta(milliseconds=300) <= d["finished_at"] - d["started_at"] < timedelta(seconds=1)
        for d in details
    )


async def test_lost_heartbeat_and_expiry_are_recovered(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """A worker that vanished (no clean stop): its worker row goes crashed and its jobs run again;
    a job past its expiry with a live heartbeat is failed for that attempt too."""
    registry = HandlerRegistry()
    registry.handler("cleanup")(_noop)
    registry.handler("batch", timeout=timedelta(seconds=1))(_noop)
    runner = make_runner(registry)
    orphan = await runner.schedule_job("cleanup", {}, tenant=TENANT)
    expired = await runner.schedule_job("batch", {}, tenant=TENANT)
    ghost = uuid.uuid4()
    await conn.execute(
        "INSERT INTO pgqueue.worker (id, host, pid, version, heartbeat_at)"
        " VALUES ($1, 'gone-host', 4242, '0.9.0', now() - interval '1 minute')",
        ghost,
    )
    # Claimed by the ghost: one with a stale heartbeat, one past its 1 s expiry.
    await conn.execute(
        """WITH t AS (UPDATE pgqueue.job SET state = 'active', attempts = 1, worker_id = $1,
                        started_at = now() - interval '1 minute',
                        heartbeat_at = CASE WHEN name = 'cleanup' THEN now() - interval '1 minute'
                                            ELSE now() + interval '1 hour' END
                      RETURNING id, tenant)
           UPDATE jobs SET status = 'processing', attempts = 1 FROM t
           WHERE jobs.job_id = t.id AND jobs.tenant = t.tenant""",
        ghost,
    )
    await reachable_for(conn, timedelta(minutes=5))
    report = await Maintainer(await runner.pool(), registry, runner.settings).run_once()
    assert report is not None and (report.crashed_workers, report.recovered_jobs) == (1, 2)
    crashed = await conn.fetchrow("SELECT * FROM pgqueue.worker WHERE id = $1", ghost)
    assert (crashed["state"], crashed["host"], crashed["pid"]) == ("crashed", "gone-host", 4242)
    errors = {
        r["job_id"]: r["error"] for r in await conn.fetch("SELECT job_id, error FROM job_details")
    }
    assert errors[orphan.job_id].startswith("lost: no heartbeat for 1")
    assert errors[expired.job_id] == "expired: no result within 1000 ms"
    await runner.start()  # both run again, on a live worker
    await eventually(
        lambda: count(conn, "SELECT count(*) = 2 FROM jobs WHERE status='completed'"), 5
    )
    assert await count(conn, "SELECT max(attempts) FROM jobs") == 2


async def test_an_outage_every_worker_saw_is_not_a_crash(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """After a gap in maintenance rounds (the database was away), silent heartbeats count only
    from when rounds resumed: live workers and their jobs are left alone; a worker that stays
    silent a heartbeat timeout after the outage is crashed then."""
    registry = HandlerRegistry()
    registry.handler("cleanup")(_noop)
    runner = make_runner(registry)
    job = await runner.schedule_job("cleanup", {}, tenant=TENANT)
    silent = uuid.uuid4()
    await conn.execute(
        "INSERT INTO pgqueue.worker (id, host, pid, version, heartbeat_at)"
        " VALUES ($1, 'db-was-away', 4243, '1.0.0', now() - interval '2 minutes')",
        silent,
    )
    await conn.execute(
        "UPDATE pgqueue.job SET state = 'active', attempts = 1, worker_id = $1,"
        " started_at = now() - interval '2 minutes', heartbeat_at = now() - interval '2 minutes'",
        silent,
    )
    # The last round before the outage, two minutes ago (the heartbeat timeout is 1 s).
    await conn.execute(
        "INSERT INTO pgqueue.maintenance (last_round_at, available_since)"
        " VALUES (now() - interval '2 minutes', now() - interval '1 hour')"
    )
    maintainer = Maintainer(await runner.pool(), registry, runner.settings)
    report = await maintainer.run_once()
    assert report is not None and (report.crashed_workers, report.recovered_jobs) == (0, 0)
    state = await conn.fetchval("SELECT state::text FROM pgqueue.worker WHERE id = $1", silent)
    assert state == "running"
    since = await conn.fetchval("SELECT now() - available_since FROM pgqueue.maintenance")
    assert since < timedelta(seconds=1)  # reachable since this round
    crashed = recovered = 0
    for _ in range(12):  # rounds without a gap for a heartbeat timeout; the worker stays silent
        await asyncio.sleep(0.1)
        report = await maintainer.run_once()
        assert report is not None
        crashed, recovered = crashed + report.crashed_workers, recovered + report.recovered_jobs
    assert (crashed, recovered) == (1, 1)
    error = await conn.fetchval("SELECT error FROM job_details WHERE job_id = $1", job.job_id)
    assert error.startswith("lost: no heartbeat")


async def test_a_fetch_whose_answer_was_lost_is_handed_back(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """A job the database says this worker took, which the worker never received (the fetch
    committed, its connection died before the answer came): the worker's heartbeats find it and
    hand it back, without spending its attempt, and it runs at once instead of at its expiry."""
    registry = HandlerRegistry()
    registry.handler("cleanup", timeout=timedelta(hours=1))(_noop)
    runner = make_runner(registry, poll_interval=timedelta(hours=1))
    await runner.start()
    worker = runner.worker
    assert worker is not None
    job = await runner.schedule_job("cleanup", {}, tenant=TENANT)
    await eventually(
        lambda: count(conn, "SELECT count(*) = 1 FROM jobs WHERE status = 'completed'"), 5
    )
    later = datetime.now(UTC) + timedelta(hours=1)  # not fetchable by the worker meanwhile
    orphan = await runner.schedule_job_at("cleanup", {"lost": True}, later, tenant=TENANT)
    await conn.execute(  # as the lost fetch left it, before the worker could see it
        """WITH t AS (UPDATE pgqueue.job SET state = 'active', attempts = 1, worker_id = $1,
                        started_at = now(), heartbeat_at = now() WHERE id = $2
                      RETURNING id, tenant)
           UPDATE jobs SET status = 'processing', attempts = 1 FROM t
           WHERE jobs.job_id = t.id AND jobs.tenant = t.tenant""",
        worker.id, orphan.job_id,
    )  # fmt: skip
    owned = "SELECT state::text FROM pgqueue.job WHERE id = $1"
    assert await conn.fetchval(owned, orphan.job_id) == "active"
    done = "SELECT status = 'completed' AND attempts = 1 FROM jobs WHERE job_id = $1"
    await eventually(lambda: conn.fetchval(done, orphan.job_id), 5, "orphan handed back, run")
    assert job.job_id != orphan.job_id


async def test_cancel_queued_and_running(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    started, cancelled = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    @registry.handler("batch")
    async def long_job(ctx, data):  # type: ignore[no-untyped-def]
        ran.append(data["n"])
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner = make_runner(registry, concurrency=1, batch_size=1)
    running = await runner.schedule_job("batch", {"n": "running"}, tenant=TENANT)
    await runner.start()
    await asyncio.wait_for(started.wait(), 5)
    queued = await runner.schedule_job("batch", {"n": "queued"}, tenant=TENANT)
    assert await runner.cancel_job(queued.job_id)
    assert await runner.cancel_job(running.job_id)
    await asyncio.wait_for(cancelled.wait(), 3)  # the handler itself was cancelled
    assert not await runner.cancel_job(running.job_id)  # already finished
    await asyncio.sleep(0.5)
    assert ran == ["running"]  # the queued one never ran
    for job in (queued, running):
        assert (await runner.get_job_status(job.job_id)).status == JobStatus.CANCELLED
    details = await conn.fetch("SELECT status::text FROM job_details WHERE job_id = $1",
                               running.job_id)  # fmt: skip
    assert [d["status"] for d in details] == ["cancelled"]


async def test_retry_a_failed_job(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    attempts: list[int] = []

    @registry.handler("renew-microsoft-calendar-webhooks", retry=RetryPolicy(max_attempts=1))
    async def renew(ctx, data):  # type: ignore[no-untyped-def]
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("token expired")

    runner = make_runner(registry)
    failed = await runner.schedule_job("renew-microsoft-calendar-webhooks", {"k": 1}, tenant=TENANT)
    await runner.start()
    await eventually(lambda: count(conn, "SELECT count(*) FROM jobs WHERE status='failed'"), 5)
    again = await runner.retry_job(failed.job_id)
    await eventually(lambda: count(conn, "SELECT count(*) FROM jobs WHERE status='completed'"), 5)
    assert (await runner.get_job_status(failed.job_id)).status == JobStatus.FAILED  # unchanged
    # The re-run completed, and its queue row stays (as completed) for its link to the failed
    # job, which nothing else records; a plain job's row leaves the queue when it completes.
    row = await conn.fetchrow(
        "SELECT state::text, retry_of FROM pgqueue.job WHERE id = $1", again.job_id
    )
    assert (row["state"], row["retry_of"]) == ("completed", failed.job_id)
    with pytest.raises(ValidationError, match="not a failed pgqueue job"):
        await runner.retry_job(again.job_id)


async def test_retention_removes_old_finished_rows_in_batches(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    registry = HandlerRegistry()
    registry.handler("cleanup-ai-session-keys")(_noop)
    runner = make_runner(registry, retention=timedelta(hours=1), retention_batch=10)
    results = await runner.schedule_many("cleanup-ai-session-keys", [{}] * 42, tenant=TENANT)
    old = [r.job_id for r in results[:35]]
    recent = [r.job_id for r in results[35:37]]
    # Failed and cancelled rows stay in the queue until retention (most completed ones leave at
    # once).
    for ids, hours_ago in ((old, 2), (recent, 0.5)):
        await conn.execute(
            """WITH t AS (UPDATE pgqueue.job SET state = 'failed', attempts = 1,
                            completed_at = now() - $2 * interval '1 hour' WHERE id = ANY($1)
                            RETURNING id)
               UPDATE jobs SET status = 'failed', attempts = 1, finished_at = now() FROM t
               WHERE jobs.job_id = t.id""",
            ids, hours_ago,
        )  # fmt: skip
    removed = await Maintainer(await runner.pool(), registry, runner.settings).purge()
    assert removed == 35
    # Waiting ones and the recently failed ones untouched.
    assert await count(conn, "SELECT count(*) FROM pgqueue.job") == 7
    assert await count(conn, "SELECT count(*) FROM jobs") == 42  # history stays
    await conn.execute("DELETE FROM jobs WHERE job_id = ANY($1)", old)  # for the final check


async def test_per_name_concurrency(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    current, peak = {"n": 0}, {"n": 0}

    @registry.handler("verify-google-calendar-pubsub")
    async def slow(ctx, data):  # type: ignore[no-untyped-def]
        current["n"] += 1
        peak["n"] = max(peak["n"], current["n"])
        await asyncio.sleep(0.05)
        current["n"] -= 1

    runner = make_runner(registry, concurrency=50,
                         concurrency_by_name={"verify-google-calendar-pubsub": 3})  # fmt: skip
    await runner.schedule_many("verify-google-calendar-pubsub", [{}] * 30, tenant=TENANT)
    await runner.start()
    await eventually(
        lambda: count(conn, "SELECT count(*) = 30 FROM jobs WHERE status='completed'"), 5
    )
    assert peak["n"] == 3


async def test_notify_wakes_worker_before_poll(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    done = asyncio.Event()

    @registry.handler("invoice_zip")
    async def zip_job(ctx, data):  # type: ignore[no-untyped-def]
        done.set()

    runner = make_runner(registry, poll_interval=timedelta(seconds=30))
    await runner.start()
    await asyncio.sleep(0.3)  # the worker is now idle, waiting up to 30 s
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await runner.schedule_job("invoice_zip", {}, tenant=TENANT)
    await asyncio.wait_for(done.wait(), 5)
    assert loop.time() - sent < 1.0


async def test_graceful_stop_hands_back_unfinished_work(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    registry = HandlerRegistry()
    started = asyncio.Event()

    @registry.handler("generate-invoice")
    async def slow(ctx, data):  # type: ignore[no-untyped-def]
        started.set()
        await asyncio.sleep(0.05 if data["quick"] else 60)

    runner = make_runner(registry)
    quick = await runner.schedule_job("generate-invoice", {"quick": True}, tenant=TENANT)
    slow_job = await runner.schedule_job("generate-invoice", {"quick": False}, tenant=TENANT)
    await runner.start()
    await asyncio.wait_for(started.wait(), 5)
    worker_id = runner.worker.id  # type: ignore[union-attr]
    await runner.stop(grace=0.5)
    assert (await make_runner(registry).get_job_status(quick.job_id)).status == JobStatus.COMPLETED
    row = await conn.fetchrow("SELECT state::text, attempts FROM pgqueue.job WHERE id = $1",
                              slow_job.job_id)  # fmt: skip
    assert (row["state"], row["attempts"]) == ("created", 0)  # handed back, attempt not counted
    status = await conn.fetchval("SELECT status::text FROM jobs WHERE job_id = $1", slow_job.job_id)
    assert status == "queued"
    worker = await conn.fetchrow("SELECT * FROM pgqueue.worker WHERE id = $1", worker_id)
    assert worker["state"] == "stopped" and worker["stopped_at"] is not None


async def test_worker_registry(conn: asyncpg.Connection, make_runner: MakeRunner):
    registry = HandlerRegistry()
    registry.handler("cleanup")(_noop)
    runner = make_runner(registry, worker_version="2026.11.23")
    await runner.start()
    row = await conn.fetchrow("SELECT * FROM pgqueue.worker")
    assert (row["state"], row["version"], row["queues"]) == ("running", "2026.11.23", ["cleanup"])
    assert row["pid"] > 0 and row["host"]
    before = row["heartbeat_at"]
    beat = "SELECT heartbeat_at > $1 FROM pgqueue.worker"
    await eventually(lambda: conn.fetchval(beat, before), 5, "a heartbeat")


async def test_bad_input_is_refused_and_nothing_written(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    registry = HandlerRegistry()
    registry.handler("cleanup")(_noop)
    runner = make_runner(registry, max_payload_bytes=1024)
    with pytest.raises(UnknownJobError, match="'no-such-job'"):
        await runner.schedule_job("no-such-job", {}, tenant=TENANT)
    with pytest.raises(ValidationError, match="data: is not JSON-serialisable"):
        await runner.schedule_job("cleanup", {"when": datetime.now(UTC)}, tenant=TENANT)
    with pytest.raises(ValidationError, match=r"data: is 20[0-9]{2} bytes"):
        await runner.schedule_job("cleanup", {"blob": "x" * 2000}, tenant=TENANT)
    with pytest.raises(ValidationError, match="tenant"):
        await runner.schedule_job("cleanup", {}, tenant="acme")
    with pytest.raises(ValidationError, match="bad cron expression"):
        await runner.schedule_recurring_job("cleanup", {}, "99 * * * *", tenant=TENANT)
    with pytest.raises(ValidationError, match="unknown unit"):
        await runner.schedule_recurring_job("cleanup", {}, "3 fortnights", tenant=TENANT)
    with pytest.raises(ValidationError, match="data"):  # one bad item refuses the whole batch
        await runner.schedule_many("cleanup", [{}, {"x": object()}], tenant=TENANT)
    for table in ("jobs", "pgqueue.job", "pgqueue.schedule"):
        assert await count(conn, f"SELECT count(*) FROM {table}") == 0


async def test_handler_errors_never_stop_the_worker(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    registry = HandlerRegistry()
    once = RetryPolicy(max_attempts=1)

    @registry.handler("expiring-credits-notification", retry=once)
    async def mixed(ctx, data):  # type: ignore[no-untyped-def]
        if data["n"] % 2:
            raise KeyError(data["n"])
        if data["n"] == 4:
            raise TimeoutError("smtp timed out")  # not our deadline: an ordinary failure

    runner = make_runner(registry)
    await runner.schedule_many("expiring-credits-notification", [{"n": n} for n in range(10)],
                               tenant=TENANT)  # fmt: skip
    await runner.start()
    await eventually(
        lambda: count(conn, "SELECT count(*) = 10 FROM jobs WHERE finished_at IS NOT NULL"), 5
    )
    rows = await conn.fetch("SELECT status::text, error FROM jobs ORDER BY metadata->>'n'")
    expected = ["failed" if n % 2 or n == 4 else "completed" for n in range(10)]
    assert [r["status"] for r in rows] == expected
    assert rows[4]["error"] == "TimeoutError: smtp timed out"
    assert rows[1]["error"] == "KeyError: 1"


async def test_a_late_outcome_never_lands_on_a_later_attempt(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """Attempt 1 is recovered (its worker looked lost) and the same worker takes attempt 2;
    attempt 1's outcome, arriving late, must leave attempt 2 alone."""
    from jobsight.runners.pgqueue import sql

    registry = HandlerRegistry()
    registry.handler("cleanup")(_noop)
    runner = make_runner(registry)
    job = await runner.schedule_job("cleanup", {}, tenant=TENANT)
    worker = uuid.uuid4()
    [first] = await conn.fetch(sql.FETCH, "cleanup", 1, worker, "v1")
    assert first["attempts"] == 1
    await conn.execute(sql.FAIL, [job.job_id], ["lost: test"], [None], [1], None, None)
    await conn.execute("UPDATE pgqueue.job SET start_after = now() WHERE id = $1", job.job_id)
    [second] = await conn.fetch(sql.FETCH, "cleanup", 1, worker, "v1")
    assert second["attempts"] == 2
    await conn.execute(sql.COMPLETE, [job.job_id], [5.0], [1], worker, "v1")  # late, attempt 1
    await conn.execute(sql.FAIL, [job.job_id], ["late"], [5.0], [1], worker, "v1")
    row = await conn.fetchrow("SELECT state::text, attempts FROM pgqueue.job WHERE id = $1",
                              job.job_id)  # fmt: skip
    assert (row["state"], row["attempts"]) == ("active", 2)
    await conn.execute(sql.COMPLETE, [job.job_id], [5.0], [2], worker, "v1")
    assert (await runner.get_job_status(job.job_id)).status == JobStatus.COMPLETED


async def test_expiry_leaves_the_owner_a_grace_period(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """Past its timeout but within the grace (the heartbeat timeout) with a live heartbeat,
    a job is left to its worker, which times it out itself."""
    registry = HandlerRegistry()
    registry.handler("batch", timeout=timedelta(milliseconds=200))(_noop)
    runner = make_runner(registry, heartbeat_timeout=timedelta(seconds=5))
    job = await runner.schedule_job("batch", {}, tenant=TENANT)
    await conn.execute(
        """WITH t AS (UPDATE pgqueue.job SET state = 'active', attempts = 1,
                        worker_id = gen_random_uuid(), heartbeat_at = now(),
                        started_at = now() - interval '2 seconds' RETURNING id)
           UPDATE jobs SET status = 'processing', attempts = 1 FROM t WHERE jobs.job_id = t.id"""
    )
    maintainer = Maintainer(await runner.pool(), registry, runner.settings)
    report = await maintainer.run_once()
    assert report is not None and report.recovered_jobs == 0
    await conn.execute(
        "UPDATE pgqueue.job SET started_at = now() - interval '6 seconds' WHERE id = $1",
        job.job_id,
    )
    report = await maintainer.run_once()
    assert report is not None and report.recovered_jobs == 1
    error = await conn.fetchval("SELECT error FROM job_details WHERE job_id = $1", job.job_id)
    assert error == "expired: no result within 200 ms"


async def test_fetch_takes_the_index_order_even_with_stale_statistics(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """Statistics taken while the queue was empty, then a burst: a session that trusts them
    expects a handful of waiting jobs and reads and sorts every one of them on each fetch. The
    worker's connections take the first rows of the fetch index instead."""
    from jobsight.runners.pgqueue import sql

    await conn.execute("ALTER TABLE pgqueue.job SET (autovacuum_enabled = off)")
    await conn.execute("ANALYZE pgqueue.job")  # while empty
    registry = HandlerRegistry()
    registry.handler("burst")(_noop)
    runner = make_runner(registry)
    await runner.schedule_many("burst", [{}] * 3000, tenant=TENANT)
    explain = "EXPLAIN (COSTS OFF) " + sql.FETCH
    args = ("burst", 500, uuid.uuid4(), "v1")
    default_plan = "\n".join(row[0] for row in await conn.fetch(explain, *args))
    assert "Sort" in default_plan  # the trap is real on a default session
    pool = await runner._worker_pool()
    try:
        worker_plan = "\n".join(row[0] for row in await pool.fetch(explain, *args))
    finally:
        await pool.close()
    assert "Sort" not in worker_plan
    assert "Index Scan using job_fetch_idx" in worker_plan


async def test_fetching_pauses_while_outcomes_wait_to_be_written(
    conn: asyncpg.Connection, make_runner: MakeRunner, migrated_db: str
):
    """Backpressure: when the database cannot take outcomes (job_details locked here), the
    worker stops taking work at max_unwritten_outcomes (plus at most one batch in flight)."""
    registry = HandlerRegistry()
    registry.handler("cleanup")(_noop)
    runner = make_runner(registry, concurrency=50, batch_size=10, max_unwritten_outcomes=20)
    await runner.schedule_many("cleanup", [{}] * 200, tenant=TENANT)
    blocker = await asyncpg.connect(migrated_db)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE job_details IN EXCLUSIVE MODE")
        await runner.start()
        await asyncio.sleep(1.0)
        active = await count(conn, "SELECT count(*) FROM pgqueue.job WHERE state = 'active'")
        assert 20 <= active <= 30, active
        await tx.rollback()
    finally:
        await blocker.close()
    await eventually(
        lambda: count(conn, "SELECT count(*) = 200 FROM jobs WHERE status='completed'"), 10
    )


async def test_every_status_change_is_audited(
    conn: asyncpg.Connection, make_runner: MakeRunner
) -> None:
    """The audit behind every test here sees the engine's changes, and would flag a bad one."""
    registry = HandlerRegistry()
    quick = RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10))

    @registry.handler("asset_import", retry=quick)
    async def flaky(ctx, data):  # type: ignore[no-untyped-def]
        if data["fail"] and ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    runner = make_runner(registry)
    await runner.start()
    ok = await runner.schedule_job("asset_import", {"fail": False}, tenant=TENANT)
    retried = await runner.schedule_job("asset_import", {"fail": True}, tenant=TENANT)
    for job in (ok, retried):
        await eventually(lambda job=job: _completed(conn, job.job_id), 10)
    seen = set(await recorded_transitions(conn))
    assert {(None, "queued"), ("queued", "processing"), ("processing", "completed")} <= seen
    assert ("processing", "queued") in seen  # the retry waits again
    await conn.execute("UPDATE jobs SET status = 'queued' WHERE job_id = $1", ok.job_id)
    assert await illegal_transitions(conn) == [("completed", "queued")]
    await conn.execute("DELETE FROM status_audit WHERE old_status = 'completed'")
    await conn.execute(
        "UPDATE jobs SET status = 'completed' WHERE job_id = $1", ok.job_id
    )  # restore it, so the tables agree again
    await conn.execute(
        "DELETE FROM status_audit WHERE new_status = 'completed' AND old_status = 'queued'"
    )


async def _completed(conn: asyncpg.Connection, job_id: uuid.UUID) -> bool:
    status = await conn.fetchval("SELECT status::text FROM jobs WHERE job_id = $1", job_id)
    return bool(status == "completed")


async def test_unstorable_error_text_never_wedges_the_failure_path(
    conn: asyncpg.Connection, make_runner: MakeRunner
) -> None:
    """A NUL or a lone surrogate in an exception's text is stored visibly escaped; ordinary
    failures around it are written as usual (issue 15, defect 1)."""
    registry = HandlerRegistry()

    @registry.handler("asset_import", retry=RetryPolicy(max_attempts=1))
    async def poison(ctx, data):  # type: ignore[no-untyped-def]
        if data["kind"] == "nul":
            raise RuntimeError("bad \x00 byte")
        if data["kind"] == "surrogate":
            raise OSError("cannot read /imports/\udcff.csv")  # a non-UTF-8 file name
        raise ValueError("ordinary")

    runner = make_runner(registry)
    await runner.start()
    kinds = ("nul", "plain", "surrogate", "plain")
    jobs = [await runner.schedule_job("asset_import", {"kind": k}, tenant=TENANT) for k in kinds]
    failed = "SELECT count(*) = 4 FROM jobs WHERE status = 'failed'"
    await eventually(lambda: conn.fetchval(failed), 10, "every job failed and was recorded")
    errors = {
        r["job_id"]: r["error"]
        for r in await conn.fetch("SELECT job_id, error FROM jobs WHERE type = 'asset_import'")
    }
    assert errors[jobs[0].job_id] == "RuntimeError: bad \\x00 byte"
    assert errors[jobs[2].job_id] == "OSError: cannot read /imports/\\udcff.csv"
    assert errors[jobs[1].job_id] == "ValueError: ordinary"
    assert runner.worker is not None and runner.worker.in_flight == 0


async def test_a_refused_outcome_cannot_hold_the_others(
    conn: asyncpg.Connection, make_runner: MakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a row still be refused (its text not made storable), the batch is written one by
    one: the others are recorded, the refused failure with a placeholder."""
    from jobsight.runners.pgqueue import worker as worker_module

    monkeypatch.setattr(worker_module, "storable_text", lambda text: text)
    monkeypatch.setattr(worker_module, "describe_error", lambda exc: f"{type(exc).__name__}: {exc}")
    registry = HandlerRegistry()
    gate = asyncio.Event()

    @registry.handler("asset_import", retry=RetryPolicy(max_attempts=1))
    async def fails(ctx, data):  # type: ignore[no-untyped-def]
        await gate.wait()  # all finish together: one batch
        raise RuntimeError("bad \x00 byte" if data["poison"] else "ordinary")

    @registry.handler("generate-invoice")
    async def works(ctx, data):  # type: ignore[no-untyped-def]
        await gate.wait()

    runner = make_runner(registry)
    await runner.start()
    poison = await runner.schedule_job("asset_import", {"poison": True}, tenant=TENANT)
    plain = await runner.schedule_job("asset_import", {"poison": False}, tenant=TENANT)
    done = await runner.schedule_job("generate-invoice", {}, tenant=TENANT)
    running = "SELECT count(*) = 3 FROM jobs WHERE status = 'processing'"
    await eventually(lambda: conn.fetchval(running), 10, "all three running")
    gate.set()
    finished = "SELECT count(*) = 3 FROM jobs WHERE finished_at IS NOT NULL"
    await eventually(lambda: conn.fetchval(finished), 10, "all three recorded")
    rows = {
        r["job_id"]: (r["status"], r["error"])
        for r in await conn.fetch("SELECT job_id, status::text, error FROM jobs")
    }
    assert rows[done.job_id] == ("completed", None)
    assert rows[plain.job_id] == ("failed", "RuntimeError: ordinary")
    assert rows[poison.job_id] == ("failed", worker_module.UNSTORABLE_ERROR)


async def test_a_forged_cancel_notification_stops_nothing(
    conn: asyncpg.Connection, make_runner: MakeRunner
) -> None:
    """Any role can NOTIFY the cancel channel; the worker stops a job only when the database
    records it cancelled (issue 15, defect 3)."""
    registry = HandlerRegistry()
    started, release = asyncio.Event(), asyncio.Event()
    interrupted: list[str] = []

    @registry.handler("batch")
    async def long_job(ctx, data):  # type: ignore[no-untyped-def]
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            interrupted.append(data["n"])
            raise

    runner = make_runner(registry)
    await runner.start()
    forged = await runner.schedule_job("batch", {"n": "forged"}, tenant=TENANT)
    await asyncio.wait_for(started.wait(), 5)
    await conn.execute("SELECT pg_notify($1, $2)", "jobsight_pgqueue_cancel", str(forged.job_id))
    real = await runner.schedule_job("batch", {"n": "real"}, tenant=TENANT)
    processing = "SELECT status::text = 'processing' FROM jobs WHERE job_id = $1"
    await eventually(lambda: conn.fetchval(processing, real.job_id), 5, "the second job runs")
    assert await runner.cancel_job(real.job_id)  # recorded in the database, then notified
    await eventually(lambda: asyncio.sleep(0, interrupted == ["real"]), 5, "the real cancel")
    release.set()
    done = "SELECT status::text = 'completed' FROM jobs WHERE job_id = $1"
    await eventually(lambda: conn.fetchval(done, forged.job_id), 5, "the forged one completes")
    assert interrupted == ["real"]


async def test_a_schedule_that_cannot_fire_holds_nothing_back(
    conn: asyncpg.Connection, make_runner: MakeRunner
) -> None:
    """A due schedule that fails when it fires records why and is tried again later; the other
    schedules keep firing and the maintainer lives on (issue 15, defect 2)."""
    registry = HandlerRegistry()
    registry.handler("reconcile-bucket-usage")(_noop)
    runner = make_runner(registry)
    good = await runner.schedule_recurring_job(
        "reconcile-bucket-usage", {"bucket": "b1"}, "1 second", tenant=TENANT
    )
    broken = await runner.schedule_recurring_job(
        "reconcile-bucket-usage", {"bucket": "b2"}, "1 second", tenant=TENANT
    )
    # A spec the code of the day cannot read (written by another release, or by hand).
    await conn.execute(
        "UPDATE pgqueue.schedule SET spec = 'every tuesday' WHERE id = $1", broken.job_id
    )
    await runner.start()
    fired = "SELECT count(*) >= 3 FROM pgqueue.job WHERE schedule_id = $1"
    await eventually(lambda: conn.fetchval(fired, good.job_id), 10, "the good schedule fires on")
    row = await conn.fetchrow("SELECT * FROM pgqueue.schedule WHERE id = $1", broken.job_id)
    assert row["failures"] == 1 and "every tuesday" in row["last_error"]
    assert row["next_run_at"] > datetime.now(UTC) + timedelta(seconds=20)  # tried again later
    assert (
        await conn.fetchval("SELECT last_error FROM pgqueue.schedule WHERE id = $1", good.job_id)
        is None
    )
    assert runner.worker is not None


async def test_a_schedule_payload_is_sized_as_stored(make_runner: MakeRunner) -> None:
    """8 KB of JSON becomes 311 KB as jsonb text (each 1e308 written out): refused at once, rather
    than failing at every firing."""
    registry = HandlerRegistry()
    registry.handler("reconcile-bucket-usage")(_noop)
    runner = make_runner(registry)
    with pytest.raises(ValidationError, match="as stored"):
        await runner.schedule_recurring_job(
            "reconcile-bucket-usage", {"x": [1e308] * 1000}, "1 hour", tenant=TENANT
        )


async def test_the_maintainer_survives_any_error(
    migrated_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error in a maintenance round is logged and retried with a backoff; it never
    ends the task that detects crashes and fires schedules."""
    rounds: list[str] = []
    original = Maintainer.run_once

    async def flaky(self: Maintainer) -> object:
        rounds.append("round")
        if len(rounds) == 1:
            raise RuntimeError("not a database error")
        return await original(self)

    monkeypatch.setattr(Maintainer, "run_once", flaky)
    settings = PgQueueSettings(maintenance_interval=timedelta(milliseconds=20))
    async with asyncpg.create_pool(migrated_db, min_size=1, max_size=2) as pool:
        task = asyncio.create_task(Maintainer(pool, HandlerRegistry(), settings).run())
        try:
            await eventually(lambda: asyncio.sleep(0, len(rounds) >= 3), 5, "rounds go on")
            assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_paused_job_name_waits_and_resumes_at_once(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """Pause stops the fetch of one job name (others run on); resume wakes the workers without
    waiting for the poll fallback."""
    registry = HandlerRegistry()
    ran: list[str] = []

    @registry.handler("export")
    async def export(ctx, data):  # type: ignore[no-untyped-def]
        ran.append("export")

    @registry.handler("email")
    async def email(ctx, data):  # type: ignore[no-untyped-def]
        ran.append("email")

    runner = make_runner(registry, poll_interval=timedelta(seconds=30))
    assert await runner.pause("export", by="alice") is True
    assert await runner.pause("export") is False  # already
    assert list(await runner.paused()) == ["export"]
    await runner.start()
    await runner.schedule_job("export", {}, tenant=TENANT)
    await runner.schedule_job("email", {}, tenant=TENANT)
    await eventually(lambda: asyncio.sleep(0, "email" in ran), 10, "email ran")
    await asyncio.sleep(0.5)
    assert "export" not in ran
    assert (
        await count(conn, "SELECT count(*) FROM jobs WHERE type = 'export' AND status = 'queued'")
        == 1
    )
    began = asyncio.get_running_loop().time()
    assert await runner.resume("export") is True
    await eventually(lambda: asyncio.sleep(0, "export" in ran), 10, "export ran")
    assert asyncio.get_running_loop().time() - began < 5  # woken, not polled (every 30 s)
    assert await runner.resume("export") is False
    with pytest.raises(ValidationError):
        await runner.pause("")


async def test_a_heartbeat_renews_only_jobs_near_expiry(
    conn: asyncpg.Connection, make_runner: MakeRunner
):
    """The worker's row is renewed at every heartbeat, a running job's row only once its own
    heartbeat is older than half the timeout less one interval (0.3 s here): a short job is never
    rewritten by a heartbeat, and a job longer than the heartbeat timeout still is not lost."""
    registry = HandlerRegistry()
    release = asyncio.Event()

    @registry.handler("generate-invoice")
    async def slow(ctx, data):  # type: ignore[no-untyped-def]
        await release.wait()

    runner = make_runner(registry)
    assert runner.settings.job_renew_after == timedelta(milliseconds=300)  # type: ignore[attr-defined]
    job = await runner.schedule_job("generate-invoice", {}, tenant=TENANT)
    await runner.start()
    row = "SELECT started_at, heartbeat_at FROM pgqueue.job WHERE id = $1 AND state = 'active'"
    await eventually(lambda: conn.fetchrow(row, job.job_id), 5, "the job running", interval=0.01)
    started = await conn.fetchrow(row, job.job_id)
    assert started["heartbeat_at"] == started["started_at"]  # taken: not yet renewed
    await asyncio.sleep(0.1)  # a heartbeat may pass: the job's is younger than 0.3 s
    assert (await conn.fetchrow(row, job.job_id))["heartbeat_at"] == started["started_at"]
    await asyncio.sleep(2.0)  # twice the heartbeat timeout: renewed meanwhile, not lost
    late = await conn.fetchrow(row, job.job_id)
    assert late is not None and late["heartbeat_at"] > started["started_at"]
    worker_beat = await conn.fetchval("SELECT now() - heartbeat_at FROM pgqueue.worker")
    assert worker_beat < timedelta(seconds=0.5)
    release.set()
    done = await eventually(
        lambda: conn.fetchval("SELECT status::text = 'completed' FROM jobs WHERE job_id = $1",
                              job.job_id), 5, "the job completing")  # fmt: skip
    assert done
    assert await conn.fetchval("SELECT attempts FROM jobs WHERE job_id = $1", job.job_id) == 1
