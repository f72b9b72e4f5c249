"""`jobsight serve` as real processes: leader failover with two sidecars, the database going away
and coming back, traces exported exactly once, and start-up errors."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from jobsight.devstack.localstack import LocalPostgres, find_pg_bindir, free_port
from jobsight.runners import HandlerRegistry, RetryPolicy, migrator
from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.paths import ROOT
from tests.support.sidecar import SidecarProcess
from tests.support.tools import require_tool
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000dd")
INTERVAL = 1.0
COMPLETED = "jobsight_jobs_completed_total"
INSERT_DONE = """
INSERT INTO jobs (tenant, type, status, user_id, runner_type, started_at, finished_at)
SELECT $1, 'generate-invoice', 'completed', $1, 'pgqueue', now(), now()
FROM generate_series(1, $2)
"""


@pytest.fixture
def sidecars(tmp_path: Path) -> Iterator[list[SidecarProcess]]:
    started: list[SidecarProcess] = []
    yield started
    for sidecar in started:
        sidecar.stop()


def invoice_count(sidecar: SidecarProcess):  # type: ignore[no-untyped-def]
    return sidecar.value(COMPLETED, job_name="generate-invoice", runner="pgqueue")


async def stored_cursor(conn: asyncpg.Connection) -> dict[str, str]:
    text = await conn.fetchval(
        "SELECT snapshot->'cursor' FROM jobsight_sidecar.source_state WHERE source = 'jobs'"
    )
    return json.loads(text)


async def counted_since(conn: asyncpg.Connection, cursor: dict[str, str]) -> int:
    """Completed jobs after the cursor the first leader started from (what must be counted)."""
    return await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE status = 'completed'"
        " AND (finished_at, job_id) > ($1::text::timestamptz, $2::uuid)",
        cursor["finished_at"],
        cursor["job_id"],
    )


async def test_leader_failover_keeps_counters_exact(
    migrated_db: str, tmp_path: Path, sidecars: list[SidecarProcess]
):
    a = SidecarProcess(migrated_db, tmp_path).start()
    sidecars.append(a)
    await eventually(lambda: _is(a.value("jobsight_leader"), 1), 15, "a leads")
    b = SidecarProcess(migrated_db, tmp_path).start()
    sidecars.append(b)
    await eventually(lambda: _is(b.value("jobsight_state_read_up"), 1), 15, "b follows")
    assert await b.value("jobsight_leader") == 0
    conn = await asyncpg.connect(migrated_db)
    try:
        start = await stored_cursor(conn)
        await conn.execute(INSERT_DONE, TENANT, 200)
        # The follower serves the leader's counters.
        await eventually(lambda: _is(invoice_count(a), 200), 10, "a counts 200")
        await eventually(lambda: _is(invoice_count(b), 200), 10, "b serves 200")

        async def produce() -> None:
            for _ in range(40):
                await conn.execute(INSERT_DONE, TENANT, 25)
                await asyncio.sleep(0.1)

        producer = asyncio.create_task(produce())
        await asyncio.sleep(1.5)
        a.signal(signal.SIGKILL)
        killed = time.monotonic()
        await eventually(lambda: _is(b.value("jobsight_leader"), 1), 10, "b takes over")
        takeover = time.monotonic() - killed
        assert takeover <= 2 * INTERVAL, f"takeover took {takeover:.2f} s"
        await producer
        expected = await counted_since(conn, start)
        assert expected == 200 + 40 * 25
        await eventually(lambda: _is(invoice_count(b), expected), 15, "b counts everything")
        await asyncio.sleep(2 * INTERVAL)
        assert await invoice_count(b) == expected  # nothing counted twice
        samples = await b.scrape()
        assert samples["jobsight_source_up"][(("source", "jobs"),)] == 1
        # Exemplars (trace ids) in the OpenMetrics format.
        status, text = await b.get("/metrics", accept="application/openmetrics-text")
        assert status == 200 and '# {trace_id="' in text
    finally:
        await conn.close()


async def _is(value, expected: float) -> bool:  # type: ignore[no-untyped-def]
    return (await value) == expected


@pytest.fixture
async def outage_db(tmp_path: Path) -> AsyncIterator[tuple[LocalPostgres, str]]:
    require_tool(find_pg_bindir() is not None, "PostgreSQL server binaries")
    pg = LocalPostgres(backend="system")
    url = pg.start()
    try:
        conn = await asyncpg.connect(url)
        await migrator.migrate(conn, "up")
        await conn.close()
        yield pg, url
    finally:
        pg.stop()


async def test_database_down_and_back(
    outage_db: tuple[LocalPostgres, str], tmp_path: Path, sidecars: list[SidecarProcess]
):
    pg, url = outage_db
    sidecar = SidecarProcess(url, tmp_path).start()
    sidecars.append(sidecar)
    await eventually(
        lambda: _is(sidecar.value("jobsight_source_up", source="jobs"), 1), 15, "first poll"
    )  # counting starts from the first poll
    conn = await asyncpg.connect(url)
    await conn.execute(INSERT_DONE, TENANT, 5)
    await conn.close()
    await eventually(lambda: _is(invoice_count(sidecar), 5), 15, "counted")
    before = await sidecar.scrape()
    last_success = before["jobsight_source_last_success_timestamp_seconds"][(("source", "jobs"),)]
    pg.pause()
    try:
        await eventually(
            lambda: _is(sidecar.value("jobsight_source_up", source="jobs"), 0), 15, "reported down"
        )
        during = await sidecar.scrape()  # /metrics keeps answering from memory
        assert during[COMPLETED][(("job_name", "generate-invoice"), ("runner", "pgqueue"))] == 5
        kept = during["jobsight_source_last_success_timestamp_seconds"][(("source", "jobs"),)]
        assert last_success <= kept < time.time()
        assert (await sidecar.get("/livez"))[0] == 200
        status, body = await sidecar.get("/readyz?verbose")
        assert status == 503 and "[-]database failed" in body
    finally:
        pg.resume()
    await eventually(
        lambda: _is(sidecar.value("jobsight_source_up", source="jobs"), 1), 20, "recovered"
    )
    assert await sidecar.value("jobsight_leader") == 1
    conn = await asyncpg.connect(url)
    await conn.execute(INSERT_DONE, TENANT, 3)
    await conn.close()
    await eventually(lambda: _is(invoice_count(sidecar), 8), 15, "counting resumes")
    assert sidecar.proc is not None and sidecar.proc.poll() is None


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[OtlpReceiver, int]]:
    otlp = OtlpReceiver()
    runner = web.AppRunner(otlp.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield otlp, port
    await runner.cleanup()


async def test_each_finished_job_is_one_trace_across_restarts_and_leader_changes(
    migrated_db: str,
    tmp_path: Path,
    sidecars: list[SidecarProcess],
    receiver: tuple[OtlpReceiver, int],
):
    otlp, port = receiver
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_SERVICE_NAME": "jobsight-test",
        "JOBSIGHT_SOURCES": "jobs",
    }
    registry = HandlerRegistry()

    @registry.handler("generate-invoice")
    async def invoice(ctx, data):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.005)

    @registry.handler(
        "asset_import", retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(0))
    )
    async def broken(ctx, data):  # type: ignore[no-untyped-def]
        raise ValueError("bad asset file")

    runner = PgQueueJobRunner(
        migrated_db, registry, PgQueueSettings(poll_interval=timedelta(milliseconds=100))
    )
    a = SidecarProcess(migrated_db, tmp_path, **env).start()
    sidecars.append(a)
    await eventually(
        lambda: _is(a.value("jobsight_source_up", source="traces"), 1), 15, "tracing up"
    )
    b = SidecarProcess(migrated_db, tmp_path, **env).start()
    sidecars.append(b)
    conn = await asyncpg.connect(migrated_db)
    await runner.start()
    try:

        async def batch(n: int) -> None:
            for i in range(n):
                await runner.schedule_job("generate-invoice", {"i": i}, tenant=TENANT)
            await runner.schedule_job("asset_import", {}, tenant=TENANT)

        await batch(20)
        await eventually(lambda: _true(len(otlp.roots()) >= 20), 20, "a exports the first jobs")
        await asyncio.to_thread(a.stop)  # clean stop (the receiver keeps serving): b takes over
        await eventually(lambda: _is(b.value("jobsight_leader"), 1), 10, "b leads")
        await batch(20)
        otlp.refuse = True  # the collector is down for a while: nothing is lost
        await asyncio.sleep(2.5 * INTERVAL)
        otlp.refuse = False
        a = SidecarProcess(migrated_db, tmp_path, **env).start()  # a restarts as a follower
        sidecars.append(a)
        await eventually(lambda: _is(a.value("jobsight_state_read_up"), 1), 15, "a follows")
        await asyncio.to_thread(b.stop)
        await eventually(lambda: _is(a.value("jobsight_leader"), 1), 10, "a leads again")
        await batch(20)
        finished = "SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL"
        await eventually(lambda: _equals(conn.fetchval(finished), 63), 20)
        await eventually(lambda: _true(len(otlp.roots()) >= 63), 20, "all traces exported")
        await asyncio.sleep(2 * INTERVAL)
    finally:
        await runner.stop(grace=1)
    jobs = {
        str(r["job_id"]).replace("-", ""): r
        for r in await conn.fetch("SELECT job_id, type, status::text AS status, attempts FROM jobs")
    }
    await conn.close()
    roots = Counter(span.trace_id for span in otlp.roots())
    assert set(roots) == set(jobs) and set(roots.values()) == {1}  # each job exactly once
    children = Counter(span.trace_id for span in otlp.spans if span.parent_span_id)
    for trace_id, job in jobs.items():
        assert children[trace_id] == job["attempts"], job  # a span per attempt
    for root in otlp.roots():
        job = jobs[root.trace_id]
        assert root.attributes["messaging.destination.name"] == job["type"]
        assert root.attributes["messaging.operation.type"] == "process"
        assert root.service_name == "jobsight-test"
        assert root.status_code == (2 if job["status"] == "failed" else 0)
        assert root.start_ns <= root.end_ns
    assert await a.value("jobsight_traces_exported_total") == 63


async def _equals(value, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return (await value) == expected


async def _true(value: bool) -> bool:
    return value


def run_serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "jobsight", "serve"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOBSIGHT_POLL_INTERVAL": "soon"}, "JOBSIGHT_POLL_INTERVAL: must be a duration"),
        ({"JOBSIGHT_SOURCES": "jobs,kafka"}, "JOBSIGHT_SOURCES: unknown source 'kafka'"),
        ({"DATABASE_URL": ""}, "DATABASE_URL: not set"),
    ],
)
def test_bad_setting_stops_start_up_with_one_line(
    shared_db: str, env: dict[str, str], message: str
):
    result = run_serve({"DATABASE_URL": shared_db, **env})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"jobsight: {message}" + result.stderr.strip().split(message, 1)[1]
    ]
    assert message in result.stderr


async def test_unmigrated_database_is_refused(empty_db: str):
    result = await asyncio.to_thread(
        run_serve, {"DATABASE_URL": empty_db, "JOBSIGHT_PORT": str(free_port())}
    )
    assert result.returncode == 2
    assert (
        "run `jobsight migrate up`" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )
