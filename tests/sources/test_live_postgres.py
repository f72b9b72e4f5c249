"""The jobs, pgqueue and postgres sources against real PostgreSQL, over work the runners did."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from jobsight.runners import HandlerRegistry, RetryPolicy
from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings
from jobsight.runners.pgqueue.maintenance import Maintainer
from jobsight.settings import SidecarSettings
from jobsight.sources import jobs, pgqueue, postgres
from jobsight.sources.base import PollContext
from tests.support.pgqueue import reachable_for
from tests.support.scrape import rendered
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
LAG = 0.3
FAST = {
    "poll_interval": timedelta(milliseconds=100),
    "maintenance_interval": timedelta(milliseconds=100),
    "heartbeat_interval": timedelta(milliseconds=200),
    "heartbeat_timeout": timedelta(seconds=1),
}


def settings_for(url: str, **overrides: object) -> SidecarSettings:
    return SidecarSettings(database_url=url, commit_lag=LAG, max_commit_lag=30.0, **overrides)


async def poll(source, settings, pool, previous=None):  # type: ignore[no-untyped-def]
    return await source.poll(PollContext(settings, pool, previous))


def totals_by_name(snap: jobs.JobsSnapshot) -> dict[str, tuple[int, int, int]]:
    return {t.job_name: (t.completed, t.failed, t.cancelled) for t in snap.totals}


def demo_registry() -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("generate-invoice")
    async def invoice(ctx, data):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.01)

    @registry.handler(
        "asset_import", retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(0))
    )
    async def asset_import(ctx, data):  # type: ignore[no-untyped-def]
        raise RuntimeError("bad asset file")

    return registry


async def test_jobs_source_counts_runner_work_once(migrated_db: str, pool: asyncpg.Pool):
    settings = settings_for(migrated_db)
    first = await poll(jobs.SOURCE, settings, pool)
    runner = PgQueueJobRunner(migrated_db, demo_registry(), PgQueueSettings(**FAST))
    ids = [
        (await runner.schedule_job("generate-invoice", {"n": i}, tenant=TENANT)).job_id
        for i in range(30)
    ]
    ids += [
        (await runner.schedule_job("asset_import", {}, tenant=TENANT)).job_id for _ in range(10)
    ]
    queued = await poll(jobs.SOURCE, settings, pool, first)
    assert {(r.job_name, r.status): r.count for r in queued.unfinished} == {
        ("generate-invoice", "queued"): 30,
        ("asset_import", "queued"): 10,
    }
    await runner.start()
    try:
        await eventually(
            lambda: pool.fetchval("SELECT count(*) = 40 FROM jobs WHERE finished_at IS NOT NULL"),
            15,
        )
    finally:
        await runner.stop(grace=1)
    await asyncio.sleep(LAG + 0.1)
    done = await poll(jobs.SOURCE, settings, pool, queued)
    assert totals_by_name(done) == {"generate-invoice": (30, 0, 0), "asset_import": (0, 10, 0)}
    assert done.newly_finished == 40 and done.unfinished == []
    invoice = next(t for t in done.totals if t.job_name == "generate-invoice")
    assert invoice.runner == "pgqueue" and sum(invoice.duration.counts) == 30
    assert 0.3 <= invoice.duration.total <= 30 * 1.0  # 30 runs of ~10 ms
    assert sum(invoice.wait.counts) == 30
    traced = {e.trace_id for e in invoice.duration.exemplars if e}
    assert traced and traced <= {str(i).replace("-", "") for i in ids}
    assert invoice.last_completion is not None
    # The database agrees, and polling again adds nothing.
    db_counts = {
        (r["type"], r["status"]): r["n"]
        for r in await pool.fetch(
            "SELECT type, status::text, count(*) AS n FROM jobs GROUP BY 1, 2"
        )
    }
    assert db_counts == {("generate-invoice", "completed"): 30, ("asset_import", "failed"): 10}
    again = await poll(jobs.SOURCE, settings, pool, done)
    assert totals_by_name(again) == totals_by_name(done) and again.newly_finished == 0


async def test_a_late_commit_is_counted_once_not_missed(migrated_db: str, pool: asyncpg.Pool):
    """A transaction that stamps finished_at, stays open while a later job finishes and a poll
    runs, then commits: both jobs are counted, each once."""
    settings = settings_for(migrated_db)
    insert = (
        "INSERT INTO jobs (tenant, job_id, type, status, user_id, runner_type, started_at)"
        " VALUES ($1, $2, $3, 'processing', $1, 'temporal', now())"
    )
    slow, quick = uuid.uuid4(), uuid.uuid4()
    await pool.execute(insert, TENANT, slow, "import")
    await pool.execute(insert, TENANT, quick, "cleanup")
    first = await poll(jobs.SOURCE, settings, pool)
    await asyncio.sleep(0.05)
    finish = "UPDATE jobs SET status = 'completed', finished_at = now() WHERE job_id = $1"
    open_tx = await asyncpg.connect(migrated_db)
    try:
        tx = open_tx.transaction()
        await tx.start()
        await open_tx.execute(finish, slow)  # finished_at = this transaction's start
        await asyncio.sleep(0.05)
        await pool.execute(finish, quick)  # committed, later finish time
        await asyncio.sleep(LAG + 0.2)
        during = await poll(jobs.SOURCE, settings, pool, first)
        assert totals_by_name(during) == {}  # held back by the open transaction, not skipped
        assert during.counting_lag >= LAG + 0.2
        await tx.commit()
    finally:
        await open_tx.close()
    await asyncio.sleep(LAG + 0.1)
    after = await poll(jobs.SOURCE, settings, pool, during)
    assert totals_by_name(after) == {"import": (1, 0, 0), "cleanup": (1, 0, 0)}
    later = await poll(jobs.SOURCE, settings, pool, after)
    assert totals_by_name(later) == totals_by_name(after)


async def test_jobs_source_reads_a_bounded_batch_per_poll(migrated_db: str, pool: asyncpg.Pool):
    settings = settings_for(migrated_db, max_finished_per_poll=7)
    first = await poll(jobs.SOURCE, settings, pool)
    await pool.execute(
        "INSERT INTO jobs (tenant, type, status, user_id, started_at, finished_at)"
        " SELECT $1, 'cleanup', 'completed', $1, now(), now() FROM generate_series(1, 20)",
        TENANT,
    )
    await asyncio.sleep(LAG + 0.1)
    snap, seen = first, []
    for _ in range(4):
        snap = await poll(jobs.SOURCE, settings, pool, snap)
        seen.append(snap.newly_finished)
    assert seen == [7, 7, 6, 0]
    assert totals_by_name(snap) == {"cleanup": (20, 0, 0)}


async def test_stuck_jobs_and_oldest_active_age(migrated_db: str, pool: asyncpg.Pool):
    settings = settings_for(migrated_db, stuck_after=600.0)
    await pool.execute(
        "INSERT INTO jobs (tenant, type, status, user_id, runner_type, started_at) VALUES"
        " ($1, 'import', 'processing', $1, 'temporal', now() - interval '2 hours'),"
        " ($1, 'import', 'processing', $1, 'temporal', now() - interval '1 minute')",
        TENANT,
    )
    snap = await poll(jobs.SOURCE, settings, pool)
    (row,) = snap.unfinished
    assert (row.job_name, row.runner, row.count, row.stuck) == ("import", "temporal", 2, 1)
    assert 7100 < row.oldest_active < 7300


async def test_rows_from_before_the_migration_are_not_invisible(
    migrated_db: str, pool: asyncpg.Pool
):
    """Rows running since before jobsight's migration have no started_at: their last change,
    else their creation, stands in, so years-old ones count as stuck and set the oldest age."""
    settings = settings_for(migrated_db, stuck_after=600.0)
    await pool.execute(
        "INSERT INTO jobs (tenant, type, status, user_id, runner_type, created_at, updated_at)"
        " VALUES ($1, 'legacy', 'processing', $1, 'pgqueue', now() - interval '3 years', NULL),"
        " ($1, 'legacy', 'active', $1, 'pgqueue', now() - interval '3 years',"
        "  now() - interval '2 days'),"
        " ($1, 'legacy', 'processing', $1, 'pgqueue', now() - interval '10 seconds', NULL)",
        TENANT,
    )
    snap = await poll(jobs.SOURCE, settings, pool)
    rows = {r.status: r for r in snap.unfinished if r.job_name == "legacy"}
    assert rows["processing"].stuck == 1 and rows["active"].stuck == 1
    assert rows["processing"].oldest_active > 3 * 365 * 86400 - 86400
    assert 2 * 86400 - 60 < rows["active"].oldest_active < 2 * 86400 + 60
    assert sum(snap.stuck_by_version.values()) == 2


async def test_pgqueue_source_over_runner_work(migrated_db: str, pool: asyncpg.Pool):
    settings = settings_for(migrated_db, recent_window=3600.0)
    registry = demo_registry()
    registry.handler("expired-credits", timeout=timedelta(seconds=1))(_hang)
    runner = PgQueueJobRunner(migrated_db, registry, PgQueueSettings(**FAST))
    for _ in range(4):
        await runner.schedule_job("generate-invoice", {}, tenant=TENANT)
    later = datetime.now(UTC) + timedelta(hours=1)
    await runner.schedule_job_at("generate-invoice", {}, later, tenant=TENANT)
    before = await poll(pgqueue.SOURCE, settings, pool)
    depth = {(r.queue, r.state): (r.count, r.ready) for r in before.queues}
    assert depth == {  # a known queue reads 0 in the states it has no job in
        ("generate-invoice", "created"): (5, 4),
        ("generate-invoice", "retry"): (0, 0),
        ("generate-invoice", "active"): (0, 0),
    }
    assert before.workers_alive == 0

    await runner.schedule_job("asset_import", {}, tenant=TENANT)
    hung = await runner.schedule_job("expired-credits", {}, tenant=TENANT)
    await runner.start()
    try:
        await eventually(
            lambda: pool.fetchval("SELECT count(*) = 1 FROM pgqueue.job WHERE state = 'failed'"), 10
        )
        await eventually(
            lambda: pool.fetchval(
                "SELECT state = 'active' FROM pgqueue.job WHERE id = $1", hung.job_id
            ),
            5,
        )
        during = await poll(pgqueue.SOURCE, settings, pool)
        assert during.workers_alive == 1
        counts = {(r.queue, r.state): r.count for r in during.queues}
        assert {key: n for key, n in counts.items() if n} == {
            ("generate-invoice", "created"): 1,
            ("expired-credits", "active"): 1,
        }
        # Every queue the worker serves reads 0 where it has nothing (asset_import is empty).
        served = {"asset_import", "expired-credits", "generate-invoice"}
        assert set(counts) == {(q, s) for q in served for s in pgqueue.QUEUE_STATES}
        # Queues served by the running worker report 0 failures when none failed.
        assert {r.queue: r.failed for r in during.recent} == {
            "asset_import": 1,
            "expired-credits": 0,
            "generate-invoice": 0,
        }
    finally:
        await runner.stop(grace=0.2)
    # A worker that vanished with its job still active, past its expiry: the job counts as
    # expired until recovered, and the maintainer records the crash.
    ghost = uuid.uuid4()
    await pool.execute(
        "INSERT INTO pgqueue.worker (id, host, pid, heartbeat_at) VALUES"
        " ($1, 'gone', 1, now() - interval '1 hour')",
        ghost,
    )
    await pool.execute(
        "UPDATE pgqueue.job SET state = 'active', worker_id = $1, attempts = 1,"
        " started_at = now() - interval '1 minute', expire_ms = 1000,"
        " heartbeat_at = now() WHERE id = $2",
        ghost,
        hung.job_id,
    )
    expired = await poll(pgqueue.SOURCE, settings, pool)
    assert [(r.queue, r.expired) for r in expired.queues if r.state == "active" and r.count] == [
        ("expired-credits", 1)
    ]
    maintainer_runner = PgQueueJobRunner(migrated_db, registry, PgQueueSettings(**FAST))
    async with pool.acquire() as conn:
        await reachable_for(conn, timedelta(minutes=5))
    report = await Maintainer(
        await maintainer_runner.pool(), registry, maintainer_runner.settings
    ).run_once()
    await maintainer_runner.stop()
    assert report is not None and report.crashed_workers == 1
    after = await poll(pgqueue.SOURCE, settings, pool)
    assert after.worker_crashes == 1
    assert not [r for r in after.queues if r.expired]
    # The round stamped pgqueue.maintenance, and the source exports when.
    assert before.maintained_at is None
    assert after.maintained_at is not None and abs(after.maintained_at - time.time()) < 30
    families = {f.name: f for f in pgqueue.SOURCE.render(after, settings)}
    (sample,) = families[pgqueue.MAINTENANCE.name].samples
    assert sample.value == after.maintained_at


async def test_the_maintenance_stamp_needs_no_access_it_lacks(migrated_db: str) -> None:
    """A sidecar role granted SELECT before migration 0005 cannot read pgqueue.maintenance: the
    source stays up and simply does not export the stamp."""
    admin = await asyncpg.connect(migrated_db)
    role = f"ro_{uuid.uuid4().hex[:8]}"
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        await admin.execute(f"GRANT USAGE ON SCHEMA pgqueue TO {role}")
        for table in ("job", "worker", "schedule"):
            await admin.execute(f"GRANT SELECT ON pgqueue.{table} TO {role}")
        await admin.execute("INSERT INTO pgqueue.maintenance (last_round_at) VALUES (now())")
        url = migrated_db.replace("postgresql://postgres@", f"postgresql://{role}@")
        async with asyncpg.create_pool(url, min_size=1, max_size=2) as limited:
            snap = await poll(pgqueue.SOURCE, settings_for(migrated_db), limited)
        assert snap.present and snap.maintained_at is None
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_pgqueue_schedules_that_did_not_fire(migrated_db: str, pool: asyncpg.Pool):
    """A schedule whose workers are gone stays due: its next due time falls behind now, which the
    schedule_missed trigger measures; once a worker's maintenance fires it, it moves on."""
    settings = settings_for(migrated_db)
    registry = demo_registry()
    runner = PgQueueJobRunner(migrated_db, registry, PgQueueSettings(**FAST))
    made = await runner.schedule_recurring_job("generate-invoice", {}, "1 hour", tenant=TENANT)
    await pool.execute(  # as if its last fire was an hour and ten minutes ago, nobody firing since
        "UPDATE pgqueue.schedule SET next_run_at = now() - interval '10 minutes',"
        " last_run_at = now() - interval '70 minutes', failures = 2 WHERE id = $1",
        made.job_id,
    )
    snap = await poll(pgqueue.SOURCE, settings, pool)
    [row] = snap.schedules
    assert row.schedule == "generate-invoice" and row.failures == 2
    assert 590 < time.time() - (row.next_due or 0) < 700
    signals = pgqueue.SOURCE.signals(snap, settings).overall
    assert signals.schedule_due == (row.next_due, "generate-invoice")
    scraped = rendered(pgqueue.SOURCE, snap, settings)
    assert (
        scraped["jobsight_pgqueue_schedule_failed_firings"][(("schedule", "generate-invoice"),)]
        == 2
    )
    assert (("schedule", "generate-invoice"),) in scraped[
        "jobsight_pgqueue_schedule_last_fire_timestamp_seconds"
    ]
    await runner.start()  # a worker's maintenance fires it, and it moves on
    try:

        async def fired() -> bool:
            after = await poll(pgqueue.SOURCE, settings, pool)
            return bool(after.schedules[0].next_due and after.schedules[0].next_due > time.time())

        await eventually(fired, 10, "the schedule fired")
    finally:
        await runner.stop(grace=1)
    after = await poll(pgqueue.SOURCE, settings, pool)
    assert after.schedules[0].failures == 0


async def test_pgqueue_source_without_the_schema(empty_db: str):
    async with asyncpg.create_pool(empty_db, min_size=1, max_size=2) as p:
        snap = await poll(pgqueue.SOURCE, settings_for(empty_db), p)
    assert snap == pgqueue.PgQueueSnapshot(present=False)


async def test_postgres_source_counts_connections(migrated_db: str, pool: asyncpg.Pool):
    extra = [
        await asyncpg.connect(migrated_db, server_settings={"application_name": "billing"})
        for _ in range(3)
    ]
    try:
        snap = await poll(postgres.SOURCE, settings_for(migrated_db), pool)
    finally:
        for conn in extra:
            await conn.close()
    by_app = {}
    for row in snap.connections:
        by_app[row.application] = by_app.get(row.application, 0) + row.count
    assert by_app["billing"] == 3
    limits = await pool.fetchrow(
        "SELECT current_setting('max_connections')::int AS m,"
        " current_setting('superuser_reserved_connections')::int AS r"
    )
    assert snap.max_connections == limits["m"] and snap.available == limits["m"] - limits["r"]
    assert snap.in_use >= 4


async def _hang(ctx, data):  # type: ignore[no-untyped-def]
    await asyncio.sleep(60)
