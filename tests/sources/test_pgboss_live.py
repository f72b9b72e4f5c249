"""The pgboss source over real pg-boss: version 10 on the system's Node 20 (schema 24, counted
live) and version 12 on Node 22 from the `node` npm package (cached counters, deltas, bins). Its
figures must match what pg-boss itself reports for the same database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from jobsight.settings import SidecarSettings
from jobsight.sources import pgboss
from jobsight.sources.base import PollContext
from tests.support.pgboss import run_scenario


@pytest.fixture
async def pool(empty_db: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(empty_db, min_size=1, max_size=2) as p:
        yield p


async def poll(settings: SidecarSettings, pool: asyncpg.Pool, previous=None):  # type: ignore[no-untyped-def]
    return await pgboss.SOURCE.poll(PollContext(settings, pool, previous))


@pytest.mark.parametrize("version", ["v10", "v12"])
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
            "failed": row.failed,
        } == want, name
        own = report["own"][name]
        assert row.queued == own["queuedCount"], name  # pg-boss's waiting jobs
        if version == "v10":
            assert (snap.counting, snap.schema_version) == ("live", 24)
            assert row.queued + row.active == own["beforeCompleted"], name
        else:
            assert snap.counting == "cached" and snap.schema_version >= 25
            assert (row.ready, row.deferred, row.active, row.failed) == (
                own["readyCount"],
                own["deferredCount"],
                own["activeCount"],
                own["failedCount"],
            ), name
    assert {q.queue: q.expired for q in snap.queues} == {"emails": 0, "reports": 0, "expiring": 1}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in pgboss.SOURCE.render(snap, settings)
        for s in family.samples
    }
    assert samples[("jobsight_pgboss_jobs", (("queue", "emails"), ("state", "ready")))] == 3
    assert samples[("jobsight_pgboss_expired_active_jobs", (("queue", "expiring"),))] == 1


async def test_pg_boss_12_windows_become_counters_once(
    empty_db: str, pool: asyncpg.Pool, pgboss_installs: dict[str, str]
):
    settings = SidecarSettings(database_url=empty_db)
    started = await poll(settings, pool)  # the sidecar was watching before the queue existed
    report = await run_scenario(pgboss_installs["v12"], "v12", empty_db, "throughput")
    own = report["own"]["digest"]
    assert (own["completedDelta"], own["failedDelta"]) == (3, 1)
    snap = await poll(settings, pool, started)
    totals = {t.queue: (t.completed, t.failed) for t in snap.totals}
    assert totals["digest"] == (3, 1)
    (latency,) = [x for x in snap.latency if x.queue == "digest"]
    assert latency.run_p95 == pgboss.percentile(own["runBins"], 95)
    again = await poll(settings, pool, snap)
    assert {t.queue: (t.completed, t.failed) for t in again.totals}["digest"] == (3, 1)
    # A sidecar starting fresh takes the current window as its baseline.
    fresh = await poll(settings, pool)
    assert {t.queue: (t.completed, t.failed) for t in fresh.totals}["digest"] == (0, 0)
