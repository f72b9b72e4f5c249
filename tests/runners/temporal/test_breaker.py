"""The Temporal engine's circuit breaker against the real dev server, SIGKILLed mid-load and started
again on its database file: with fallback the jobs scheduled during the outage run on pgqueue,
without it the calls fail fast; either way every accepted job runs exactly once, on one engine,
and the breaker opens, half-opens and closes as configured."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from jobsight.devstack.localstack import LocalTemporal
from jobsight.runners import (
    HandlerRegistry,
    RetryPolicy,
    ScheduleOptions,
    ScheduleResult,
    UnknownJobError,
    ValidationError,
)
from jobsight.runners.breaker import BreakerSettings, BreakerState
from jobsight.runners.factory import RunnerSettings, create_runner
from jobsight.runners.fallback import BreakerJobRunner
from jobsight.runners.temporal import (
    CircuitOpenError,
    TemporalJobRunner,
    TemporalSettings,
    TemporalUnavailableError,
)
from jobsight.runners.temporal import types as t
from tests.support.faults import exactly_once_violations
from tests.support.transitions import install_status_audit
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000b7ea7")
BREAKER = BreakerSettings(failures=2, window=30, cooldown=3)
STEADY = 10  # jobs scheduled before the outage, and at least this many after it


def counting_registry(runs: Counter[int]) -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("counted", retry=RetryPolicy(max_attempts=20,
                      initial_interval=timedelta(milliseconds=200)))  # fmt: skip
    async def counted(ctx, data):  # type: ignore[no-untyped-def]
        runs[data["n"]] += 1  # the handler's own side effect: how often job n really ran
        await asyncio.sleep(0.05)

    return registry


def runner_settings(url: str, address: str, queue: str, fallback: bool) -> RunnerSettings:
    temporal = TemporalSettings(address=address, task_queue=queue,
                                rpc_timeout=timedelta(seconds=2))  # fmt: skip
    return RunnerSettings(url, runner_type="temporal", fallback_to_pgqueue=fallback,
                          breaker=BREAKER, engine_options={"temporal": temporal})  # fmt: skip


class Load:
    """Schedules job n = 0, 1, 2, ... and notes what each call did."""

    def __init__(self, runner: BreakerJobRunner) -> None:
        self.runner = runner
        self.accepted: dict[int, uuid.UUID] = {}
        self.refused: dict[int, tuple[str, float]] = {}  # n -> (error type, seconds taken)
        self.next = 0
        self.states: list[BreakerState] = []

    async def one(self) -> None:
        n, began = self.next, time.monotonic()
        self.next += 1
        try:
            result = await self.runner.schedule_job("counted", {"n": n}, tenant=TENANT)
            self.accepted[n] = result.job_id
        except TemporalUnavailableError as exc:
            self.refused[n] = (type(exc).__name__, time.monotonic() - began)
        if not self.states or self.states[-1] != self.runner.breaker.state:
            self.states.append(self.runner.breaker.state)
        await asyncio.sleep(0.05)

    async def until(self, done: object, within: float) -> None:
        deadline = time.monotonic() + within
        while not done():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"breaker states seen: {self.states}"
            await self.one()


async def _run_outage(url: str, fallback: bool) -> tuple[Load, Counter[int], asyncpg.Connection]:
    server = LocalTemporal(persistent=True)
    address = server.start()
    runs: Counter[int] = Counter()
    runner = await create_runner(
        runner_settings(url, address, f"breaker-{uuid.uuid4().hex[:8]}", fallback),
        counting_registry(runs),
    )
    assert isinstance(runner, BreakerJobRunner)
    await runner.start()
    load = Load(runner)
    conn = await asyncpg.connect(url)
    await install_status_audit(conn)
    try:
        for _ in range(STEADY):
            await load.one()
        server.kill()
        await load.until(lambda: runner.breaker.state == BreakerState.OPEN, 30)
        for _ in range(STEADY):  # while open: fallback or fail fast, no waiting on Temporal
            await load.one()
        server.restart()
        await load.until(lambda: runner.breaker.state == BreakerState.CLOSED, 60)
        for _ in range(STEADY):
            await load.one()
        finished = "SELECT count(*) = $1 FROM jobs WHERE finished_at IS NOT NULL"
        await eventually(lambda: conn.fetchval(finished, len(load.accepted)), 120, "all finished")
    finally:
        await runner.stop(5)
        server.stop()
    return load, runs, conn


@pytest.mark.slow
async def test_outage_with_fallback_runs_every_job_once_on_one_engine(
    migrated_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "jobsight.breaker")
    load, runs, conn = await _run_outage(migrated_db, fallback=True)
    try:
        assert load.refused == {}  # nothing failed: what Temporal could not take, pgqueue did
        assert runs == Counter(range(load.next))  # every job's handler ran exactly once
        assert await exactly_once_violations(conn, load.next) == []
        engines = dict(await conn.fetch(
            "SELECT runner_type, count(*) FROM jobs GROUP BY runner_type"))  # fmt: skip
        assert engines["pgqueue"] >= STEADY and engines["temporal"] >= 2 * STEADY
        noted = await conn.fetchval(
            "SELECT count(*) FROM job_details d JOIN jobs j USING (tenant, job_id)"
            " WHERE d.step_name = 'fallback' AND j.runner_type = 'pgqueue'"
        )
        assert noted == engines["pgqueue"]  # each fallen-back job says so
        row = await conn.fetchrow("SELECT * FROM runner_breakers WHERE engine = 'temporal'")
        assert row["state"] == "closed" and row["fallbacks"] == engines["pgqueue"]
        said = [r.getMessage() for r in caplog.records if r.name == "jobsight.breaker"]
        assert any(m.startswith("Temporal breaker open (2 failures within 30 s") for m in said)
        assert any(m.startswith("Temporal breaker half-open") for m in said)
        assert any(m.startswith("Temporal breaker closed: the probe call succeeded") for m in said)
        assert load.states[:2] == ["closed", "open"] and load.states[-1] == "closed"
    finally:
        await conn.close()


@pytest.mark.slow
async def test_outage_without_fallback_fails_fast_and_loses_nothing(migrated_db: str) -> None:
    load, runs, conn = await _run_outage(migrated_db, fallback=False)
    try:
        fast = [took for kind, took in load.refused.values() if kind == "CircuitOpenError"]
        slow = [took for kind, took in load.refused.values() if kind != "CircuitOpenError"]
        assert len(fast) >= STEADY and max(fast) < 0.5  # open: refused without asking Temporal
        assert len(slow) >= BREAKER.failures and max(slow) < 4  # bounded by the RPC timeout
        assert runs == Counter(load.accepted.keys())  # accepted jobs ran once; refused ones never
        assert await exactly_once_violations(conn, len(load.accepted)) == []
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE runner_type <> 'temporal'") == 0
    finally:
        await conn.close()


async def test_a_withdrawn_job_is_not_run_by_a_late_workflow(
    migrated_db: str, temporal_address: str
) -> None:
    """The producer's half of the protocol: once its row is gone (the start timed out and the job
    went elsewhere), the workflow the server started anyway ends without running the handler;
    and a row its attempt already took is not withdrawn."""
    runs: Counter[int] = Counter()
    queue = f"withdrawn-{uuid.uuid4().hex[:8]}"
    settings = TemporalSettings(address=temporal_address, task_queue=queue)
    runner = TemporalJobRunner(migrated_db, counting_registry(runs), settings)
    await runner.start()
    try:
        later = datetime.now(UTC) + timedelta(seconds=2)
        result = await runner.schedule_job_at("counted", {"n": 1}, later, tenant=TENANT)
        assert await runner._forget(result.job_id)  # what a failed start does
        client = await Client.connect(temporal_address)
        with pytest.raises(WorkflowFailureError) as failed:
            await client.get_workflow_handle(result.external_id or "").result()
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == t.WITHDRAWN_ERROR
        assert runs == Counter()
        pool = await runner.pool()
        assert await pool.fetchval("SELECT count(*) FROM jobs") == 0  # nothing written back
        taken = await runner.schedule_job("counted", {"n": 2}, tenant=TENANT)
        running = "SELECT status <> 'queued' FROM jobs WHERE job_id = $1"
        await eventually(lambda: pool.fetchval(running, taken.job_id), 30)
        assert not await runner._forget(taken.job_id)  # it runs on Temporal: not withdrawn
    finally:
        await runner.stop()


async def test_unreachable_at_start_opens_the_breaker_and_fails_fast(migrated_db: str) -> None:
    unreachable = TemporalSettings(address="127.0.0.1:1", connect_timeout=timedelta(seconds=1))
    settings = RunnerSettings(migrated_db, runner_type="temporal", fallback_to_pgqueue=True,
                              breaker=BREAKER,
                              engine_options={"temporal": unreachable})  # fmt: skip
    runner = await create_runner(settings, counting_registry(Counter()))
    assert isinstance(runner, BreakerJobRunner) and runner.breaker.state == BreakerState.OPEN
    try:
        result = await runner.schedule_job("counted", {"n": 0}, tenant=TENANT)
        pool = await runner.temporal.pool()
        assert await pool.fetchval("SELECT runner_type FROM jobs WHERE job_id = $1",
                                   result.job_id) == "pgqueue"  # fmt: skip
        with pytest.raises(CircuitOpenError, match="next probe in"):
            await runner.schedule_recurring_job("counted", {"n": 1}, "5 minutes", tenant=TENANT)
        with pytest.raises(UnknownJobError):  # a bad input is refused as such, breaker or not
            await runner.schedule_job("not-registered", {}, tenant=TENANT)
        with pytest.raises(ValidationError, match="interval"):
            await runner.schedule_recurring_job("counted", {}, "every now and then", tenant=TENANT)
    finally:
        await runner.stop(1)


async def test_a_singleton_key_is_one_job_across_both_engines(
    migrated_db: str, temporal_address: str
) -> None:
    """A key held on Temporal is honoured while jobs go to pgqueue, and a key that went to
    pgqueue is honoured once Temporal is back (no worker runs here: the jobs stay waiting)."""
    settings = replace(runner_settings(migrated_db, temporal_address,
                                       f"singleton-{uuid.uuid4().hex[:8]}", fallback=True),
                       breaker=BreakerSettings(failures=1, cooldown=0.2))  # fmt: skip
    runner = await create_runner(settings, counting_registry(Counter()))
    assert isinstance(runner, BreakerJobRunner)

    async def keyed(n: int, key: str) -> ScheduleResult:
        options = ScheduleOptions(singleton_key=key)
        return await runner.schedule_job("counted", {"n": n}, tenant=TENANT, options=options)

    try:
        on_temporal = await keyed(1, "a")
        runner.breaker.trip("test: Temporal taken away")
        again = await keyed(2, "a")
        assert again.duplicate and again.job_id == on_temporal.job_id
        on_pgqueue = await keyed(3, "b")
        await asyncio.sleep(0.3)  # the cool-down passes: the next call would probe Temporal
        back = await keyed(4, "b")
        assert back.duplicate and back.job_id == on_pgqueue.job_id
        pool = await runner.temporal.pool()
        rows = dict(await pool.fetch("SELECT job_id, runner_type FROM jobs"))
        assert rows == {on_temporal.job_id: "temporal", on_pgqueue.job_id: "pgqueue"}
    finally:
        await runner.stop(1)
