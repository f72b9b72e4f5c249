"""The temporal source against the real Temporal dev server, over workflows of the Temporal
runner: counts by status, task-queue backlog and pollers, long-running and recently failed; read
over gRPC with the SDK and over the HTTP API without it, with the same answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from jobsight.runners import HandlerRegistry, RetryPolicy
from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings
from jobsight.settings import SidecarSettings
from jobsight.sidecar.poller import close_clients
from jobsight.sources import temporal, temporal_api
from jobsight.sources.base import PollContext

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000cc")


@pytest.fixture(params=["grpc", "http"])
def reach(request: pytest.FixtureRequest, temporal_address: str) -> dict[str, str]:
    """How the source reaches Temporal: over gRPC (the SDK) or over the HTTP API."""
    if request.param == "grpc":
        return {"temporal_address": temporal_address}
    http = request.getfixturevalue("temporal_http_address")
    return {"temporal_address": "unused.invalid:7233", "temporal_http_address": http}


@pytest.fixture
async def clients() -> AsyncIterator[dict[str, Any]]:
    """The clients the polls keep (as the poller does), closed at the end."""
    kept: dict[str, Any] = {}
    yield kept
    await close_clients(kept)


@pytest.fixture
def task_queue() -> str:
    return f"src-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def runner(
    migrated_db: str, temporal_address: str, task_queue: str
) -> AsyncIterator[tuple[TemporalJobRunner, asyncio.Event]]:
    release = asyncio.Event()
    registry = HandlerRegistry()

    @registry.handler("import")
    async def slow_import(ctx, data):  # type: ignore[no-untyped-def]
        await release.wait()

    @registry.handler("asset_import", retry=RetryPolicy(max_attempts=1))
    async def broken(ctx, data):  # type: ignore[no-untyped-def]
        raise ValueError("bad asset")

    settings = TemporalSettings(
        address=temporal_address, task_queue=task_queue, heartbeat_timeout=timedelta(seconds=5)
    )
    made = TemporalJobRunner(migrated_db, registry, settings)
    yield made, release
    release.set()
    await made.stop()


async def poll_until(ctx: PollContext, check, within: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while True:
        snap = await temporal.SOURCE.poll(ctx)
        if check(snap) or asyncio.get_running_loop().time() > deadline:
            return snap
        await asyncio.sleep(0.3)


async def test_temporal_source_over_runner_workflows(
    migrated_db: str, reach: dict[str, str], task_queue: str, runner, clients: dict[str, Any]
):  # type: ignore[no-untyped-def]
    made, release = runner
    settings = SidecarSettings(
        database_url=migrated_db,
        temporal_task_queues=(task_queue,),
        long_running_after=1.0,
        **reach,  # type: ignore[arg-type]
    )
    ctx = PollContext(settings, None, None, clients)
    # Scheduled with no worker polling: workflow tasks wait in the task queue.
    for _ in range(3):
        await made.schedule_job("import", {}, tenant=TENANT)
    # Visibility is eventually consistent: its count may trail the task queue's backlog a little.
    waiting = await poll_until(
        ctx, lambda s: s.task_queues[0].backlog >= 3 and s.workflows.get("running") == 3
    )
    (queue,) = waiting.task_queues
    assert (queue.task_queue, queue.backlog) == (task_queue, 3)
    assert queue.workflow_pollers == 0 and queue.backlog_age > 0
    assert waiting.workflows == {"running": 3}  # closed ones count within the recent window

    await made.start()
    await made.schedule_job("asset_import", {}, tenant=TENANT)
    busy = await poll_until(
        ctx,
        lambda s: (
            s.recent_closed.get("failed") == 1
            and s.task_queues[0].workflow_pollers > 0
            and s.task_queues[0].activity_pollers > 0
            and s.long_running == 3
        ),
    )
    assert busy.workflows == {"running": 3, "failed": 1}
    assert busy.recent_closed == {"failed": 1, "timed_out": 0}
    assert busy.long_running == 3  # running for more than a second

    release.set()
    done = await poll_until(
        ctx,
        lambda s: s.workflows.get("completed") == 3 and s.task_queues[0].backlog == 0,
        within=30,
    )
    assert done.workflows == {"running": 0, "completed": 3, "failed": 1}
    assert done.long_running == 0
    assert done.task_queues[0].backlog == 0  # the approximate count catches up
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in temporal.SOURCE.render(done, settings)
        for s in family.samples
    }
    assert samples[("jobsight_temporal_workflows", (("status", "completed"),))] == 3
    # The closed count (over the close-time window) is read at most once a minute, kept between.
    assert done.closed is not None
    kept = await temporal.SOURCE.poll(PollContext(settings, None, done, clients))
    assert kept.closed is done.closed and kept.workflows["completed"] == 3
    done.closed.read_at -= temporal.temporal_schedules.READ_EVERY_S
    fresh = await temporal.SOURCE.poll(PollContext(settings, None, done, clients))
    assert fresh.closed is not done.closed and fresh.workflows["completed"] == 3


async def test_temporal_down_is_an_error_not_a_hang(
    migrated_db: str, clients: dict[str, Any]
) -> None:
    settings = SidecarSettings(
        database_url=migrated_db, temporal_address="127.0.0.1:1", poll_timeout=2.0
    )
    with pytest.raises(ConnectionError, match=r"^TEMPORAL_ADDRESS: cannot reach Temporal at "):
        await asyncio.wait_for(temporal.SOURCE.poll(PollContext(settings, None, None, clients)), 10)
    over_http = SidecarSettings(
        database_url=migrated_db, temporal_http_address="127.0.0.1:1", poll_timeout=2.0
    )
    with pytest.raises(
        temporal_api.TemporalApiError, match=r"^JOBSIGHT_TEMPORAL_HTTP_ADDRESS: cannot reach "
    ):
        await asyncio.wait_for(
            temporal.SOURCE.poll(PollContext(over_http, None, None, clients)), 10
        )


async def test_temporal_http_api_that_is_not_one_says_so(
    migrated_db: str, temporal_address: str, clients: dict[str, Any]
) -> None:
    """The gRPC port given as the HTTP API's, and a port that answers 404: each fails the poll at
    once with one line naming JOBSIGHT_TEMPORAL_HTTP_ADDRESS."""
    from aiohttp import web

    grpc_port = SidecarSettings(
        database_url=migrated_db, temporal_http_address=temporal_address, poll_timeout=2.0
    )
    with pytest.raises(
        temporal_api.TemporalApiError, match=r"^JOBSIGHT_TEMPORAL_HTTP_ADDRESS: .* gRPC port"
    ):
        await asyncio.wait_for(
            temporal.SOURCE.poll(PollContext(grpc_port, None, None, clients)), 10
        )
    await close_clients(clients)
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        elsewhere = SidecarSettings(
            database_url=migrated_db, temporal_http_address=f"127.0.0.1:{port}", poll_timeout=2.0
        )
        with pytest.raises(
            temporal_api.TemporalApiError, match=r"^JOBSIGHT_TEMPORAL_HTTP_ADDRESS: .* 404; "
        ):
            await temporal.SOURCE.poll(PollContext(elsewhere, None, None, clients))
    finally:
        await runner.cleanup()


async def test_temporal_schedules_read_once_a_minute(
    migrated_db: str, reach: dict[str, str], task_queue: str, runner, clients: dict[str, Any]
):  # type: ignore[no-untyped-def]
    """A Temporal Schedule of the runner: its job name, next and last fire, missed fires and
    whether the last run it started failed; read again only after a minute."""
    from jobsight.sources import temporal_schedules
    from tests.support.scrape import rendered

    made, _ = runner
    await made.start()
    made_schedule = await made.schedule_recurring_job(
        "asset_import", {}, "2 seconds", tenant=TENANT
    )
    settings = SidecarSettings(
        database_url=migrated_db,
        temporal_task_queues=(task_queue,),
        **reach,  # type: ignore[arg-type]
    )

    def failed_once(snap: temporal.TemporalSnapshot) -> bool:
        found = snap.schedules.schedules if snap.schedules else []
        return any(s.last_failed for s in found)

    snap = None
    for _ in range(40):  # each poll of a fresh context reads the schedules afresh
        snap = await temporal.SOURCE.poll(PollContext(settings, None, None, clients))
        if failed_once(snap):
            break
        await asyncio.sleep(0.5)
    assert snap is not None and snap.schedules is not None
    [state] = [s for s in snap.schedules.schedules if s.schedule_id == made_schedule.external_id]
    assert state.job_name == "asset_import" and state.spec == "every 0:00:02"
    assert state.last_failed is True and state.missed == 0 and not state.paused
    assert state.next_due and state.last_fire and state.next_due > state.last_fire
    scraped = rendered(temporal.SOURCE, snap, settings)
    key = (("schedule", "asset_import"),)
    assert scraped["jobsight_temporal_schedule_last_run_failed"][key] == 1
    assert scraped["jobsight_temporal_schedule_missed_fires"][key] == 0
    # Within the minute, a poll that follows keeps the read it has.
    again = await temporal.SOURCE.poll(PollContext(settings, None, snap, clients))
    assert again.schedules is snap.schedules or again.schedules == snap.schedules
    assert not temporal_schedules.read_due(again.schedules, again.schedules.read_at + 59)
    assert await made.cancel_job(made_schedule.job_id)  # the dev server is shared: tidy up


async def test_a_schedule_behind_a_hung_run_owes_a_fire(
    migrated_db: str, temporal_http_address: str, task_queue: str, runner, clients: dict[str, Any]
):  # type: ignore[no-untyped-def]
    """Temporal's overlap policy (SKIP by default) skips every fire while the previous run still
    runs: the schedule has not run since the first skipped fire, which it owes until a run
    starts; the schedule_missed trigger measures from it."""
    from jobsight.health.triggers import schedule_missed
    from jobsight.sources import temporal_schedules
    from jobsight.sources.signals import Signals

    made, release = runner
    await made.start()
    made_schedule = await made.schedule_recurring_job("import", {}, "2 seconds", tenant=TENANT)
    settings = SidecarSettings(
        database_url=migrated_db,
        temporal_http_address=temporal_http_address,  # the other reads test both ways
        temporal_task_queues=(task_queue,),
    )

    def mine(snap: temporal.TemporalSnapshot) -> temporal_schedules.ScheduleState | None:
        found = snap.schedules.schedules if snap.schedules else []
        return next((s for s in found if s.schedule_id == made_schedule.external_id), None)

    async def read_again(previous: temporal.TemporalSnapshot | None) -> temporal.TemporalSnapshot:
        if previous is not None and previous.schedules is not None:  # as a minute later
            previous.schedules.read_at -= temporal_schedules.READ_EVERY_S
        return await temporal.SOURCE.poll(PollContext(settings, None, previous, clients))

    first = await read_again(None)
    for _ in range(40):  # until the first run has started (and hangs: import waits)
        state = mine(first)
        if state is not None and state.last_fire is not None:
            break
        await asyncio.sleep(0.5)
        first = await read_again(first)
    before = mine(first)
    assert before is not None and before.last_fire is not None and before.owed is None
    await asyncio.sleep(5)  # two fires or more come due; each is skipped
    second = await read_again(first)
    owing = mine(second)
    assert owing is not None and owing.skipped > before.skipped
    assert owing.last_fire == before.last_fire and owing.owed == before.next_due
    # The dev server is shared: other tests' schedules may owe fires of their own (their workers
    # are gone), so the source's signal is the earliest of all, no later than this one's.
    due = temporal.SOURCE.signals(second, settings).overall.schedule_due
    assert due is not None and due[0] <= before.next_due
    assert temporal_schedules.earliest_owed([owing]) == (before.next_due, "import")
    cfg = settings.triggers["schedule_missed"]
    alone = Signals(schedule_due=temporal_schedules.earliest_owed([owing]))
    late = schedule_missed(alone, cfg, before.next_due + cfg.degraded + 1)
    assert late.state.name == "DEGRADED" and "import due" in (late.detail or "")
    third = await read_again(second)  # still hung: still owed, from the same fire
    assert mine(third).owed == before.next_due  # type: ignore[union-attr]
    release.set()  # the run ends; the next fire starts a run
    for _ in range(40):
        await asyncio.sleep(0.5)
        third = await read_again(third)
        state = mine(third)
        if state is not None and state.last_fire != before.last_fire:
            break
    assert state is not None and state.last_fire != before.last_fire and state.owed is None
    assert await made.cancel_job(made_schedule.job_id)


async def test_an_http_api_that_stops_answering_fails_the_poll_within_its_timeout(
    migrated_db: str, temporal_http_address: str, clients: dict[str, Any]
) -> None:
    """A network path that drops everything mid-run (the kept connection included): the poll
    fails once its timeout is up, naming the wait, and never hangs."""
    from tests.support.proxy import Proxy

    proxy = Proxy(temporal_http_address)
    settings = SidecarSettings(
        database_url=migrated_db, temporal_http_address=proxy.start(), poll_timeout=1.0
    )
    try:
        assert (await temporal.SOURCE.poll(PollContext(settings, None, None, clients))).workflows
        proxy.blackhole()
        began = asyncio.get_running_loop().time()
        with pytest.raises(temporal_api.TemporalApiError, match=r"no answer within 1s$"):
            await asyncio.wait_for(
                temporal.SOURCE.poll(PollContext(settings, None, None, clients)), 10
            )
        assert asyncio.get_running_loop().time() - began < 3
    finally:
        proxy.stop()


async def test_odd_schedule_ids_do_not_fail_the_poll(
    migrated_db: str, temporal_address: str, reach: dict[str, str], clients: dict[str, Any]
) -> None:
    """A schedule whose id has a `/` (Temporal's HTTP API answers 404 for it, escaped or not) and
    one whose last run's workflow id has one: over gRPC both are read; over HTTP the first is
    left out and the second read without whether its last run failed; the poll succeeds. A
    schedule that is gone reads as NotFound on both transports."""
    from temporalio.client import (
        Client,
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleIntervalSpec,
        ScheduleSpec,
    )

    client = await Client.connect(temporal_address)
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))])
    made, mark = [], uuid.uuid4().hex[:8]  # the dev server is shared: ids of this run's own
    odd, plain, run_id = f"odd/ü id {mark}", f"plain ü?# {mark}", f"wf/ü {mark}"
    for schedule_id, workflow_id in ((odd, "plain-wf"), (plain, run_id)):
        action = ScheduleActionStartWorkflow("Nothing", id=workflow_id, task_queue="odd-ids")
        made.append(await client.create_schedule(schedule_id, Schedule(action=action, spec=spec)))
    await made[1].trigger()  # a last run, under a workflow id with a '/'
    settings = SidecarSettings(database_url=migrated_db, **reach)  # type: ignore[arg-type]
    try:
        for _ in range(40):
            snap = await temporal.SOURCE.poll(PollContext(settings, None, None, clients))
            found = {s.schedule_id: s for s in snap.schedules.schedules}  # type: ignore[union-attr]
            if found.get(plain) and found[plain].last_fire:
                break
            await asyncio.sleep(0.5)
        over_http = "temporal_http_address" in reach
        assert (odd in found) is not over_http
        read = found[plain]
        assert read.last_workflow.startswith(f"{run_id}-") and read.last_fire is not None
        assert read.last_failed is None  # it still runs (gRPC) or cannot be asked (HTTP)
        api = clients["temporal"]
        with pytest.raises(temporal_api.NotFound):
            await api.describe_schedule("no-such-schedule", 5.0)
    finally:
        for handle in made:
            await handle.delete()


async def test_a_restarted_server_is_read_again_at_the_next_poll(migrated_db: str) -> None:
    """Temporal killed mid-run: the poll fails at once on either transport, naming the address;
    restarted on its database file, the next poll reads it through the kept client."""
    from jobsight.devstack.temporal import LocalTemporal

    server = LocalTemporal(persistent=True)
    server.start()
    try:
        kept: list[tuple[SidecarSettings, dict[str, Any]]] = []
        for reach in ({"temporal_address": server.address},
                      {"temporal_http_address": server.http_address}):  # fmt: skip
            settings = SidecarSettings(database_url=migrated_db, poll_timeout=3.0, **reach)  # type: ignore[arg-type]
            clients: dict[str, Any] = {}
            await temporal.SOURCE.poll(PollContext(settings, None, None, clients))
            kept.append((settings, clients))
        server.kill()
        for settings, clients in kept:
            with pytest.raises(
                temporal_api.TemporalApiError, match=r"ADDRESS: cannot reach"
            ) as down:
                await asyncio.wait_for(
                    temporal.SOURCE.poll(PollContext(settings, None, None, clients)), 10
                )
            assert "\n" not in str(down.value)
        server.restart()
        for settings, clients in kept:
            snap = await temporal.SOURCE.poll(PollContext(settings, None, None, clients))
            assert snap.workflows.get("running") == 0
            await close_clients(clients)
    finally:
        server.stop()
