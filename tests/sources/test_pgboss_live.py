"""The pgboss source over real pg-boss releases: 10 on the system's Node 20 (schema 24, counted
live), 11 and 12.5 (schema 26: cached counters without a failed count) and the latest 12 (all
cached counters, monitor bins, the completion index) on Node 22 from the `node` npm package. Its
figures must match what pg-boss itself reports for the same database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from jobsight import codec
from jobsight.settings import SidecarSettings
from jobsight.sources import pgboss
from jobsight.sources.base import PollContext
from jobsight.sources.pgboss_layout import MODERN_JOB_COLUMNS, layout
from tests.support.pgboss import RELEASES, run_scenario
from tests.support.scrape import rendered


@pytest.fixture
async def pool(empty_db: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(empty_db, min_size=1, max_size=2) as p:
        yield p


async def poll(settings: SidecarSettings, pool: asyncpg.Pool, previous=None):  # type: ignore[no-untyped-def]
    return await pgboss.SOURCE.poll(PollContext(settings, pool, previous))


def totals(snap: pgboss.PgBossSnapshot) -> dict[str, tuple[int, int]]:
    """The queues whose counters moved: (completed, failed)."""
    return {t.queue: (t.completed, t.failed) for t in snap.totals if t.completed or t.failed}


@pytest.mark.parametrize("version", RELEASES)
async def test_figures_match_pg_boss_own_counts(
    version: str, empty_db: str, pool: asyncpg.Pool, pgboss_installs: dict[str, str]
):
    settings = SidecarSettings(database_url=empty_db)
    assert (await poll(settings, pool)).present is False
    report = await run_scenario(pgboss_installs[version], version, empty_db)
    await asyncio.sleep(1.3)  # the 'expiring' job passes its 1 s expiry
    snap = await poll(settings, pool)
    by_queue = {q.queue: q for q in snap.queues}
    for name, want in report["expected"].items():
        row = by_queue[name]
        assert {
            "ready": row.ready,
            "deferred": row.deferred,
            "active": row.active,
            "failed": row.failed,  # pg-boss 11 and 12.5 cache no failed count: from the table
        } == want, name
        own = report["own"][name]
        assert row.queued == own["queuedCount"], name  # pg-boss's waiting jobs
        if version in ("v9", "v10"):
            assert (snap.counting, snap.schema_version) == ("live", 20 if version == "v9" else 24)
            assert row.queued + row.active == own["beforeCompleted"], name
            continue
        assert snap.counting == "cached" and snap.schema_version >= 25
        assert (row.deferred, row.active) == (own["deferredCount"], own["activeCount"]), name
        if "failedCount" in own:  # the latest 12 caches these two as well
            assert (row.ready, row.failed) == (own["readyCount"], own["failedCount"]), name
    assert {q.queue: q.expired for q in snap.queues} == {"emails": 0, "reports": 0, "expiring": 1}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in pgboss.SOURCE.render(snap, settings)
        for s in family.samples
    }
    assert samples[("jobsight_pgboss_jobs", (("queue", "emails"), ("state", "ready")))] == 3
    assert samples[("jobsight_pgboss_jobs", (("queue", "reports"), ("state", "failed")))] == 3
    assert samples[("jobsight_pgboss_expired_active_jobs", (("queue", "expiring"),))] == 1


@pytest.mark.parametrize("version", RELEASES)
async def test_finished_counters_match_pg_boss_own_record(
    version: str, empty_db: str, pool: asyncpg.Pool, pgboss_installs: dict[str, str]
):
    """The application's default settings (no persistQueueStats): a worker completes and fails
    jobs, and the counters equal pg-boss's own record of each job's state, on every release."""
    settings = SidecarSettings(database_url=empty_db, commit_lag=0.5)
    await run_scenario(pgboss_installs[version], version, empty_db, "finished", "0")
    started = await poll(settings, pool)  # watching before the jobs run: the counters start at 0
    if version == "v9":  # no queue table: a queue is known once it has a job
        assert started.totals == []
    else:
        assert {(t.completed, t.failed) for t in started.totals} == {(0, 0)}
        assert "digest" in {t.queue for t in started.totals}  # 10 also has __pgboss__ ones
    report = await run_scenario(pgboss_installs[version], version, empty_db, "finished", "12")
    own = report["own"]
    assert (own["completed"], own["failed"]) == (8, 4)
    await asyncio.sleep(settings.commit_lag + 0.2)  # past the commit horizon
    snap = await poll(settings, pool, started)
    assert snap.counted is not None and snap.counted.indexed == (version == "v12")
    assert totals(snap) == {"digest": (8, 4)}
    samples = rendered(pgboss.SOURCE, snap, settings)
    assert samples["jobsight_pgboss_jobs_completed_total"][(("queue", "digest"),)] == 8
    assert samples["jobsight_pgboss_jobs_failed_total"][(("queue", "digest"),)] == 4
    assert samples["jobsight_pgboss_jobs"][(("queue", "digest"), ("state", "failed"))] == 4
    signals = pgboss.SOURCE.signals(snap, settings).overall
    window = max(signals.finished)
    assert (signals.finished[window].finished, signals.finished[window].failed) == (12, 4)
    assert signals.last_completion[window] > time.time() - 60
    assert sum(c.sample for c in signals.latency[window]) == 12
    # The next leader reads the stored snapshot and goes on: nothing counted twice.
    stored = codec.loads(pgboss.PgBossSnapshot, codec.dumps(snap))
    again = await poll(settings, pool, stored)
    assert totals(again) == {"digest": (8, 4)}
    fresh = await poll(settings, pool)  # a sidecar starting with no state starts at 0
    assert totals(fresh) == {}


async def test_a_count_that_runs_out_of_time_moves_nothing(
    empty_db: str, pool: asyncpg.Pool, pgboss_installs: dict[str, str]
):
    """A count cancelled by statement_timeout (a huge job table, no index) leaves the counters and
    the cursor as they were and gives the triggers no evidence; the next count catches up."""
    settings = SidecarSettings(database_url=empty_db, commit_lag=0.5)
    await run_scenario(pgboss_installs["v11"], "v11", empty_db, "finished", "0")
    started = await poll(settings, pool)
    await run_scenario(pgboss_installs["v11"], "v11", empty_db, "finished", "6")
    await asyncio.sleep(settings.commit_lag + 0.2)
    async with pool.acquire() as locker, pool.acquire() as conn:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE pgboss.job_common IN ACCESS EXCLUSIVE MODE")
        await conn.execute("SET statement_timeout = '300ms'")
        columns = {"job": set(), "queue": set()}
        tables = layout("pgboss", 26, {"job": set(MODERN_JOB_COLUMNS)})
        ctx = PollContext(settings, pool, started)
        count = await pgboss.count_finished(conn, ctx, columns, tables)
        await conn.execute("RESET statement_timeout")
        await tx.rollback()
    assert count is not None and count.timing.ok is False and count.queues == []
    snap = pgboss.SOURCE.build(
        pgboss.PgBossRows(True, 26, cached=[], count=count), started, settings
    )
    assert snap.cursor == started.cursor and snap.totals == started.totals
    assert pgboss.SOURCE.signals(snap, settings).overall.finished == {}
    await asyncio.sleep(count.timing.seconds / settings.pgboss_scan_share)  # the back-off
    caught_up = await poll(settings, pool, snap)
    assert totals(caught_up) == {"digest": (4, 2)}


async def test_pg_boss_12_monitor_bins_give_the_p95_gauges(
    empty_db: str, pool: asyncpg.Pool, pgboss_installs: dict[str, str]
):
    settings = SidecarSettings(database_url=empty_db, commit_lag=0.5)
    started = await poll(settings, pool)  # the sidecar was watching before the queue existed
    report = await run_scenario(pgboss_installs["v12"], "v12", empty_db, "throughput")
    own = report["own"]["digest"]
    assert (own["completedDelta"], own["failedDelta"]) == (3, 1)
    snap = await poll(settings, pool, started)
    assert {t.queue: (t.completed, t.failed) for t in snap.totals}["digest"] == (3, 1)
    (latency,) = [x for x in snap.latency if x.queue == "digest"]
    assert latency.run_p95 == pgboss.percentile(own["runBins"], 95)
    # persistQueueStats: pg-boss stored a statistics row at each monitor pass; the latest one's
    # time and created rate are exported, equal to pg-boss's own rows.
    stored = await pool.fetchrow(
        "SELECT extract(epoch FROM captured_on)::float8 AS at, created_delta, delta_seconds"
        " FROM pgboss.queue_stats WHERE name = 'digest' ORDER BY captured_on DESC LIMIT 1"
    )
    assert stored["created_delta"] == 4 and stored["delta_seconds"] > 0
    [stats] = [q for q in snap.records.stats or [] if q.queue == "digest"]
    assert stats.captured_on == stored["at"] and time.time() - stats.captured_on < 60
    assert stats.created_per_second == 4 / stored["delta_seconds"]
    scraped = rendered(pgboss.SOURCE, snap, settings)
    assert scraped["jobsight_pgboss_stats_created_per_second"][(("queue", "digest"),)] == (
        stats.created_per_second
    )
    assert (("queue", "digest"),) in scraped["jobsight_pgboss_stats_captured_timestamp_seconds"]


@pytest.mark.parametrize("version", RELEASES)
async def test_a_schedule_nobody_checks_is_owed_a_fire(
    version: str, empty_db: str, pool: asyncpg.Pool, pgboss_installs: dict[str, str]
) -> None:
    """pg-boss stamps version.cron_on when it checks its schedules: the fire a schedule owes is
    the first of its cron after that stamp, in the past once nobody checks."""
    await run_scenario(pgboss_installs[version], version, empty_db)
    settings = SidecarSettings(database_url=empty_db)
    await pool.execute(  # as pg-boss's schedule() writes it, in a time zone of its own
        "INSERT INTO pgboss.schedule (name, cron, timezone, created_on) VALUES ('emails', "
        "'*/5 * * * *', 'Asia/Kolkata', now() - interval '1 day')"
    )
    await pool.execute("UPDATE pgboss.version SET cron_on = now() - interval '20 minutes'")
    snap = await poll(settings, pool)
    [schedule] = snap.schedules
    owed = pgboss.pgboss_schedules.owed_fire(schedule)
    assert owed is not None and owed % 300 == 0  # a 5-minute boundary (+05:30 is whole minutes)
    assert 15 * 60 - 1 <= time.time() - owed <= 20 * 60
    due = pgboss.SOURCE.signals(snap, settings).overall.schedule_due
    assert due == (owed, "emails")
    scraped = rendered(pgboss.SOURCE, snap, settings)
    assert (
        scraped["jobsight_pgboss_schedule_next_due_timestamp_seconds"][(("schedule", "emails"),)]
        == owed
    )
    await pool.execute("UPDATE pgboss.version SET cron_on = now()")  # checked: owed is ahead
    later = await poll(settings, pool)
    assert pgboss.pgboss_schedules.owed_fire(later.schedules[0]) > time.time()  # type: ignore[operator]


async def test_keys_held_by_failed_jobs_and_persisted_warnings(
    empty_db: str, pool: asyncpg.Pool, pgboss_installs: dict[str, str]
) -> None:
    """pg-boss 12: in a key_strict_fifo queue, a job that failed for good holds its key and the
    key's later jobs wait behind it; persisted warnings are counted by type. The stalled trigger
    says which keys hold work back."""
    report = await run_scenario(pgboss_installs["v12"], "v12", empty_db, "strict")
    assert report["own"]["failed"] == "failed" and report["own"]["firstFetched"]
    settings = SidecarSettings(database_url=empty_db, recent_window=3600.0)
    snap = await poll(settings, pool)
    assert snap.records.blocked == [pgboss.pgboss_records.BlockedKeys("ledger", 1, 3)]
    assert snap.records.warnings == {"queue_backlog": 1}
    scraped = rendered(pgboss.SOURCE, snap, settings)
    assert scraped["jobsight_pgboss_blocked_keys"][(("queue", "ledger"),)] == 1
    assert scraped["jobsight_pgboss_jobs_behind_blocked_keys"][(("queue", "ledger"),)] == 3
    assert scraped["jobsight_pgboss_warnings_recent"][(("kind", "queue_backlog"),)] == 1
    notes = pgboss.SOURCE.signals(snap, settings).overall.stall_notes
    assert notes == ("pg-boss keys held by failed jobs: ledger (1 keys, 3 jobs behind)",)


async def test_older_releases_are_not_scanned_for_blocked_keys(
    empty_db: str, pool: asyncpg.Pool, pgboss_installs: dict[str, str]
) -> None:
    """Without a key_strict_fifo queue no index serves the count: it is not made at all."""
    await run_scenario(pgboss_installs["v11"], "v11", empty_db)
    snap = await poll(SidecarSettings(database_url=empty_db), pool)
    assert snap.records.blocked is None and snap.records.warnings is None
    assert snap.records.stats is None  # 11 has no queue_stats table


async def test_pg_boss_9_expired_and_archived_jobs(
    empty_db: str, pool: asyncpg.Pool, pgboss_installs: dict[str, str]
) -> None:
    """pg-boss 9 ends a job that overran its expiry with no retry left as `expired`: a failure.
    Its maintenance then moves finished jobs to `archive`, which is counted too; its own jobs
    (maintenance, cron) are not an application's queue."""
    settings = SidecarSettings(database_url=empty_db, commit_lag=0.5)
    await run_scenario(pgboss_installs["v9"], "v9", empty_db, "finished", "0")
    started = await poll(settings, pool)
    report = await run_scenario(pgboss_installs["v9"], "v9", empty_db, "expired")
    assert report["own"] == {"archived": 5, "expired": 3, "completed": 2}
    await asyncio.sleep(settings.commit_lag + 0.2)
    snap = await poll(settings, pool, started)
    assert totals(snap) == {"sync": (2, 3)}
    assert all(not q.queue.startswith("__") for q in snap.queues)
    signals = pgboss.SOURCE.signals(snap, settings).overall
    window = max(signals.finished)
    assert (signals.finished[window].finished, signals.finished[window].failed) == (5, 3)


async def test_an_unread_schema_version_is_refused_by_name(empty_db: str, pool: asyncpg.Pool):
    """pg-boss 10.0 to 10.1.1 (schemas 21 to 23) and anything before 7.4 are not read: the
    source says which version it found and which it reads, and exports no figure."""
    await pool.execute(
        "CREATE SCHEMA pgboss; CREATE TABLE pgboss.version (version int primary key);"
        "INSERT INTO pgboss.version VALUES (22);"
        "CREATE TABLE pgboss.job (name text, state text, started_on timestamptz)"
    )
    with pytest.raises(pgboss.PgBossError, match=r"version 22 .* reads schema 20 .* lacks"):
        await poll(SidecarSettings(database_url=empty_db), pool)
