"""A runner's open Temporal breaker, as the sidecar shows it: the real runner (Temporal unreachable,
fallback on) writes its row, and the jobs source turns it into the breaker gauge, the fallback
counter, the verdict's detail and the status page's table; a gone process's row stops counting
as open but keeps its fallbacks."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import asyncpg

from jobsight.codec import to_jsonable
from jobsight.health.verdict import Evaluator
from jobsight.runners import HandlerRegistry
from jobsight.runners.breaker import BreakerSettings
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
