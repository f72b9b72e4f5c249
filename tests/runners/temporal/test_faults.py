"""Temporal faults: a worker process killed mid-activity, and Temporal going down later."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from jobsight.devstack.localstack import LocalTemporal
from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings, TemporalUnavailableError
from tests.support.faults import exactly_once_violations, print_logs
from tests.support.handlers.temporal import registry
from tests.support.processes import kill_leftovers, start_jobsight, stop_all
from tests.support.transitions import install_status_audit
from tests.support.waiting import eventually

OUTAGE_S = 5.0
TENANT = uuid.UUID("00000000-0000-4000-8000-00000000dead")


def _worker(url: str, address: str, queue: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    return start_jobsight(
        "worker", "--runner", "temporal", "--handlers", "tests.support.handlers.temporal:registry",
        "--task-queue", queue, "--temporal-address", address, "--database-url", url, log=log,
    )  # fmt: skip


@pytest.mark.slow
async def test_killed_worker_mid_activity(migrated_db: str, temporal_address: str) -> None:
    queue = f"fault-{uuid.uuid4().hex[:8]}"
    settings = TemporalSettings(address=temporal_address, task_queue=queue,
                                heartbeat_timeout=timedelta(seconds=2))  # fmt: skip
    producer = TemporalJobRunner(migrated_db, registry, settings, work=False)
    conn = await asyncpg.connect(migrated_db)
    first = _worker(migrated_db, temporal_address, queue)
    second = None
    try:
        result = await producer.schedule_job("slow-import", {"seconds": 3}, tenant=TENANT)
        running = "SELECT status = 'processing' FROM jobs WHERE job_id = $1"
        await eventually(lambda: conn.fetchval(running, result.job_id), 30)
        await asyncio.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = _worker(migrated_db, temporal_address, queue)
        done = "SELECT status = 'completed' FROM jobs WHERE job_id = $1"
        await eventually(lambda: conn.fetchval(done, result.job_id), 60)
        row = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", result.job_id)
        assert row["attempts"] == 2 and row["finished_at"] is not None  # the kill cost one try
        details = await conn.fetch(
            "SELECT status::text, attempt FROM job_details WHERE job_id = $1", result.job_id
        )
        assert [(d["status"], d["attempt"]) for d in details] == [("completed", 2)]
        second.send_signal(signal.SIGTERM)  # graceful shutdown: a clean exit
        assert second.wait(30) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        await producer.stop()
        await conn.close()


@pytest.mark.slow
async def test_temporal_down_later_fails_clearly(migrated_db: str) -> None:
    server = LocalTemporal()
    address = server.start()
    runner = TemporalJobRunner(migrated_db, registry, TemporalSettings(
        address=address, rpc_timeout=timedelta(seconds=3)), work=False)  # fmt: skip
    try:
        await runner.client()  # connected while it was up
        server.stop()
        with pytest.raises(TemporalUnavailableError, match="Temporal refused"):
            await runner.schedule_job("slow-import", {}, tenant=TENANT)
        conn = await asyncpg.connect(migrated_db)
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 0  # nothing half-written
        await conn.close()
    finally:
        server.stop()
        await runner.stop()


@pytest.mark.slow
async def test_database_outage_does_not_lose_the_outcome(temporal_address: str) -> None:
    """The database goes away while a job runs and comes back: the activities' writes are
    retried and the job's row ends completed."""
    from jobsight.devstack.localstack import LocalPostgres, find_pg_bindir
    from jobsight.runners import HandlerRegistry, RetryPolicy, migrator
    from tests.support.tools import require_tool

    require_tool(find_pg_bindir() is not None, "PostgreSQL server binaries")
    pg = LocalPostgres(backend="system")
    url = pg.start()
    release = asyncio.Event()
    own = HandlerRegistry()

    @own.handler(
        "credit-reconciliation",
        retry=RetryPolicy(max_attempts=10, initial_interval=timedelta(seconds=1)),
    )
    async def waits(ctx, data):  # type: ignore[no-untyped-def]
        await release.wait()

    runner = None
    try:
        conn = await asyncpg.connect(url)
        await migrator.migrate(conn, "up")
        await conn.close()
        runner = TemporalJobRunner(url, own, TemporalSettings(
            address=temporal_address, task_queue=f"outage-{uuid.uuid4().hex[:8]}"))  # fmt: skip
        await runner.start()
        result = await runner.schedule_job("credit-reconciliation", {}, tenant=TENANT)
        conn = await asyncpg.connect(url)
        running = "SELECT status = 'processing' FROM jobs WHERE job_id = $1"
        await eventually(lambda: conn.fetchval(running, result.job_id), 30)
        await conn.close()
        pg.pause()  # the handler finishes while the database is away
        release.set()
        await asyncio.sleep(3)
        pg.resume()
        conn = await asyncpg.connect(url)
        done = "SELECT status = 'completed' FROM jobs WHERE job_id = $1"
        await eventually(lambda: conn.fetchval(done, result.job_id), 60)
        details = await conn.fetch(
            "SELECT status::text FROM job_details WHERE job_id = $1", result.job_id
        )
        assert "completed" in [d["status"] for d in details]
        await conn.close()
    finally:
        if runner is not None:
            await runner.stop()
        pg.stop()


@pytest.mark.slow
async def test_server_killed_and_restarted_mid_load(migrated_db: str, tmp_path: Path) -> None:
    """Two worker processes working 300 jobs; the dev server is SIGKILLed mid-load and started
    again on its database file. Every job completes, each attempt is recorded once, and no job
    has two completed attempts (a redelivered success is not run again)."""
    jobs = 300
    server = LocalTemporal(persistent=True)
    address = server.start()
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(migrated_db)
    await install_status_audit(conn)
    producer = TemporalJobRunner(migrated_db, registry, TemporalSettings(
        address=address, task_queue=queue), work=False)  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(jobs):
            await producer.schedule_job("steady", {"n": n}, tenant=TENANT)
        workers = [_worker(migrated_db, address, queue, tmp_path / f"w{i}.log") for i in range(2)]
        completed = "SELECT count(*) FROM jobs WHERE status = 'completed'"
        await eventually(lambda: _at_least(conn, completed, 60), within=60, interval=0.1)
        server.kill()
        await asyncio.sleep(OUTAGE_S)  # longer than the SDK's own retries of a completion
        server.restart()
        await eventually(lambda: _at_least(conn, completed, jobs), within=180, interval=0.5)
        assert await exactly_once_violations(conn, jobs) == []
        assert stop_all(workers, 60) == [0, 0]
    finally:
        kill_leftovers(workers)
        await producer.stop()
        await conn.close()
        server.stop()
        print_logs(tmp_path)


async def _at_least(conn: asyncpg.Connection, query: str, n: int) -> bool:
    return bool(await conn.fetchval(query) >= n)
