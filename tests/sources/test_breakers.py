"""A runner's open Temporal breaker, as the sidecar shows it: the real runner (Temporal unreachable,
fallback on) writes its row, and the jobs source turns it into the breaker gauge, the fallback
counter, the verdict's detail and the status page's table; a gone process's row stops counting
as open but keeps its fallbacks."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import asyncpg
import pytest

from jobsight.codec import to_jsonable
from jobsight.health.verdict import Evaluator
from jobsight.runners import HandlerRegistry, warn_once
from jobsight.runners.breaker import BreakerSettings
from jobsight.runners.breaker_record import BreakerRecord
from jobsight.runners.factory import RunnerSettings, create_runner
from jobsight.runners.fallback import BreakerJobRunner
from jobsight.runners.temporal import TemporalSettings
from jobsight.settings import SidecarSettings
from jobsight.sidecar import pages
from jobsight.sidecar.poller import SidecarState
from jobsight.sources import jobs
from jobsight.sources.base import PollContext
from jobsight.sources.status import SourceStatus, SourceView
from tests.support.scrape import rendered
from tests.support.waiting import eventually

OPEN = (("engine", "temporal"), ("state", "open"))
CLOSED = (("engine", "temporal"), ("state", "closed"))
TENANT = uuid.UUID("00000000-0000-4000-8000-00000000b4ea")


async def test_an_open_breaker_is_exported_shown_and_ages_out(migrated_db: str) -> None:
    registry = HandlerRegistry()

    @registry.handler("report")
    async def report(ctx, data):  # type: ignore[no-untyped-def]
        return None  # never run here: no worker is started

    unreachable = TemporalSettings(address="127.0.0.1:1", connect_timeout=timedelta(seconds=1))
    runner = await create_runner(
        RunnerSettings(migrated_db, runner_type="temporal", fallback_to_pgqueue=True,
                       breaker=BreakerSettings(cooldown=600),
                       engine_options={"temporal": unreachable}),
        registry,
    )  # fmt: skip
    assert isinstance(runner, BreakerJobRunner)
    settings = SidecarSettings(database_url=migrated_db, commit_lag=0.2)
    pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=2)
    try:
        for _ in range(3):
            await runner.schedule_job("report", {}, tenant=TENANT)
        fallbacks = "SELECT fallbacks FROM runner_breakers WHERE state = 'open'"
        await eventually(lambda: pool.fetchval(fallbacks), 10, "the row written")
        await eventually(lambda: pool.fetchval(fallbacks + " AND fallbacks = 3"), 10)
        snap = await jobs.SOURCE.poll(PollContext(settings, pool, None))
        samples = rendered(jobs.SOURCE, snap, settings)
        assert samples["jobsight_runner_breakers"][OPEN] == 1
        assert samples["jobsight_runner_breakers"][CLOSED] == 0
        assert samples["jobsight_runner_fallbacks_total"][(("engine", "temporal"),)] == 3

        now = time.time()
        views = {"jobs": SourceView(snap, SourceStatus(True, now, now, 0.01))}
        verdict = Evaluator(settings).evaluate(views, now)[None]
        [shown] = to_jsonable(verdict)["breakers"]
        assert (shown["engine"], shown["state"], shown["fallbacks"]) == ("temporal", "open", 3)
        assert shown["reason"].startswith("Temporal unreachable at start")
        page = pages.render(verdict, SidecarState(views=views), settings, now)
        assert 'data-engine="temporal" data-state="open"' in page and "OPEN" in page

        await runner.stop(1)  # the process is gone; make its last refresh old
        await pool.execute("UPDATE runner_breakers SET seen_at = now() - interval '1 minute'")
        snap = await jobs.SOURCE.poll(PollContext(settings, pool, snap))
        samples = rendered(jobs.SOURCE, snap, settings)
        assert samples["jobsight_runner_breakers"][OPEN] == 0
        assert samples["jobsight_runner_fallbacks_total"][(("engine", "temporal"),)] == 3
        assert Evaluator(settings).evaluate(views | {"jobs": SourceView(
            snap, SourceStatus(True, now, now, 0.01))}, now)[None].breakers == []  # fmt: skip
    finally:
        await runner.stop(1)
        await pool.close()


GONE_ROWS = """
INSERT INTO runner_breakers (engine, process, state, since, reason, fallbacks, seen_at)
VALUES ('temporal', 'old-pod/1/aaaaaa', 'open', now() - interval '3 hours', 'down', 2,
        now() - interval '2 hours'),
       ('temporal', 'old-pod/1/bbbbbb', 'closed', now() - interval '3 hours', '', 3,
        now() - interval '2 hours'),
       ('temporal', 'old-pod/1/cccccc', 'closed', now() - interval '3 hours', '', 0,
        now() - interval '2 hours'),
       ('temporal', 'recent-pod/1/dddddd', 'closed', now() - interval '1 hour', '', 4,
        now() - interval '10 minutes')
"""
FALLBACKS_TOTAL = (("engine", "temporal"),)


async def test_gone_processes_rows_are_retired_and_their_fallbacks_kept(migrated_db: str) -> None:
    """Every deploy leaves rows of processes now gone; each runner folds those gone an hour into
    the engine's retired row, so the table stays small and the fallback counter never drops."""
    settings = SidecarSettings(database_url=migrated_db)
    async with asyncpg.create_pool(migrated_db, min_size=1, max_size=3) as pool:

        async def exported() -> tuple[float, float]:
            snap = await jobs.SOURCE.poll(PollContext(settings, pool, None))
            samples = rendered(jobs.SOURCE, snap, settings)
            return (samples["jobsight_runner_fallbacks_total"][FALLBACKS_TOTAL],
                    samples["jobsight_runner_breakers"][CLOSED])  # fmt: skip

        async def current() -> asyncpg.Pool:
            return pool

        await pool.execute(GONE_ROWS)
        record = BreakerRecord("temporal", current)
        record.fell_back()
        record.ensure_running()  # writes its own row, then retires at once
        try:
            await eventually(
                lambda: pool.fetchval("SELECT count(*) = 3 FROM runner_breakers"), 10, "retired"
            )
            rows = dict(await pool.fetch("SELECT process, fallbacks FROM runner_breakers"))
            assert rows == {"": 5, "recent-pod/1/dddddd": 4, record.process: 1}
            assert await exported() == (10, 1)  # 2 + 3 + 0 + 4 + 1; only the live one counted

            # Retired by several processes at once: each gone row still counts once.
            await pool.execute(
                "UPDATE runner_breakers SET seen_at = now() - interval '2 hours'"
                " WHERE process = 'recent-pod/1/dddddd'"
            )
            await asyncio.gather(*(record.retire_gone() for _ in range(3)))
            rows = dict(await pool.fetch("SELECT process, fallbacks FROM runner_breakers"))
            assert rows == {"": 9, record.process: 1}
            assert await exported() == (10, 1)
        finally:
            await record.close()


async def test_a_role_that_may_not_delete_keeps_the_rows(
    migrated_db: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warn_once, "_given", set())  # not yet told in this process
    role = "breaker_writer"
    admin = await asyncpg.connect(migrated_db)
    try:
        await admin.execute(GONE_ROWS)
        if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'w-Pa55'")
        await admin.execute(f"GRANT SELECT, INSERT, UPDATE ON runner_breakers TO {role}")
        url = migrated_db.replace("postgresql://postgres@", f"postgresql://{role}:w-Pa55@")
        async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:

            async def current() -> asyncpg.Pool:
                return pool

            record = BreakerRecord("temporal", current)
            await record.retire_gone()
            await record.retire_gone()
        assert await admin.fetchval("SELECT count(*) FROM runner_breakers") == 4
        [refusal] = [r.getMessage() for r in caplog.records if "cannot retire" in r.getMessage()]
        assert "permission denied" in refusal  # told once, though refused twice
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()
