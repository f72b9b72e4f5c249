"""pgqueue under load across PostgreSQL going away: two worker processes and a producer keep
working while the server is stopped as a crash would stop it (`pg_ctl stop -m immediate`) and
started again, once briefly and once for longer than the heartbeat timeout. Every job completes
exactly once, the rows agree with the queue, and no live worker is recorded as crashed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from jobsight.devstack.postgres import LocalPostgres, find_pg_bindir
from jobsight.runners import ScheduleOptions, migrator
from jobsight.runners.connections import CONNECT_TIMEOUT_S, KEEPALIVE_IDLE_S, command_timeout
from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings
from tests.support.faults import crashed_workers, exactly_once_violations, print_logs
from tests.support.handlers.chaos import registry
from tests.support.pgqueue import disagreements
from tests.support.processes import kill_leftovers, start_jobsight, stop_all
from tests.support.proxy import Proxy
from tests.support.tools import require_tool
from tests.support.transitions import install_status_audit
from tests.support.waiting import eventually

TENANT = "4b1d5e7a-0000-4000-8000-0000000fa017"
JOBS = 600


def _worker(url: str, heartbeat_timeout: float, log: Path) -> subprocess.Popen[bytes]:
    return start_jobsight(
        "worker", "--handlers", "tests.support.handlers.chaos:registry", "--concurrency", "10",
        "--heartbeat-interval", f"{heartbeat_timeout / 6:g}",  # the defaults' proportions
        "--heartbeat-timeout", f"{heartbeat_timeout:g}", "--database-url", url, log=log,
    )  # fmt: skip


async def _produce(url: str, produced: list[int]) -> None:
    """Schedules JOBS jobs, 20 at a time, retrying through the outage: a singleton key per job
    makes a retry after an unanswered commit find the job instead of adding a second."""
    runner = PgQueueJobRunner(url, registry, work=False)
    try:
        for n in range(JOBS):
            while True:
                try:
                    once = ScheduleOptions(singleton_key=f"n{n}")
                    await runner.schedule_job("chaos", {"n": n}, tenant=TENANT, options=once)
                    break
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                    await asyncio.sleep(0.2)
            produced.append(n)
            if n % 20 == 19:
                await asyncio.sleep(0.05)
    finally:
        await runner.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("outage_s", "heartbeat_timeout_s"),
    [(1.0, 4.0), (8.0, 2.0)],
    ids=["restart", "outage-longer-than-heartbeat-timeout"],
)
async def test_postgres_stopped_mid_load(
    outage_s: float, heartbeat_timeout_s: float, tmp_path: Path
) -> None:
    require_tool(find_pg_bindir() is not None, "PostgreSQL server binaries")
    pg = LocalPostgres(backend="system", durable=True)  # a crash loses no acknowledged commit
    url = pg.start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        conn = await asyncpg.connect(url)
        await migrator.migrate(conn, "up")
        await install_status_audit(conn)
        await conn.close()
        workers = [_worker(url, heartbeat_timeout_s, tmp_path / f"w{i}.log") for i in range(2)]
        produced: list[int] = []
        producer = asyncio.create_task(_produce(url, produced))
        await eventually(lambda: _count(url, "status = 'completed'", 50), within=60, interval=0.2)
        pg.pause(immediate=True)  # mid-load: jobs running, outcomes waiting to be written
        await asyncio.sleep(outage_s)
        pg.resume()
        await producer
        assert sorted(produced) == list(range(JOBS))
        await eventually(lambda: _count(url, "status = 'completed'", JOBS), within=120,
                         interval=0.5)  # fmt: skip
        await asyncio.sleep(heartbeat_timeout_s)  # a false crash would have been declared by now
        conn = await asyncpg.connect(url)
        try:
            assert await exactly_once_violations(conn, JOBS) == []
            assert await disagreements(conn) == []
            assert await crashed_workers(conn) == []
            ns = await conn.fetchval("SELECT count(DISTINCT metadata->>'n') FROM jobs")
            assert ns == JOBS
        finally:
            await conn.close()
        assert stop_all(workers, 30) == [0, 0]
    finally:
        kill_leftovers(workers)
        pg.stop()
        print_logs(tmp_path)


async def _count(url: str, where: str, at_least: int) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        return bool(await conn.fetchval(f"SELECT count(*) >= $1 FROM jobs WHERE {where}", at_least))
    finally:
        await conn.close()


async def test_a_black_holed_database_is_noticed_in_bounded_time(migrated_db: str) -> None:
    """The path to the database starts dropping every packet (nothing is closed): a call fails
    within the client's bounds (command limit, then a bounded cancel), never hangs on the
    kernel's TCP timeout; the sockets carry TCP keepalives for the idle ones."""
    host_port = migrated_db.split("@", 1)[1].split("/", 1)[0]
    proxy = Proxy(host_port)
    address = proxy.start()
    url = migrated_db.replace(host_port, address)
    settings = PgQueueSettings(statement_timeout=timedelta(seconds=1))
    runner = PgQueueJobRunner(url, registry, settings, work=False)
    try:
        await runner.schedule_job("chaos", {"n": 1}, tenant=TENANT)
        pool = await runner.pool()
        async with pool.acquire() as conn:
            sock = conn._transport.get_extra_info("socket")  # type: ignore[attr-defined]
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE_S
        proxy.blackhole()
        began = time.monotonic()
        with pytest.raises((TimeoutError, asyncpg.InterfaceError, OSError)):
            await runner.schedule_job("chaos", {"n": 2}, tenant=TENANT)
        # the command's limit, then at most one bounded connect (asyncpg's cancel request)
        assert time.monotonic() - began < command_timeout(1.0) + CONNECT_TIMEOUT_S + 2
    finally:
        proxy.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner.stop(), 5)


@pytest.mark.slow
async def test_poison_in_the_middle_of_ordinary_traffic(migrated_db: str, tmp_path: Path) -> None:
    """Two worker processes work ordinary jobs while some fail with unstorable error text and a
    schedule written by another release cannot fire: the ordinary jobs complete exactly once, the
    poison ones fail with their text escaped, the good schedule keeps firing, the bad one says
    why, and maintenance goes on."""
    conn = await asyncpg.connect(migrated_db)
    await install_status_audit(conn)
    producer = PgQueueJobRunner(migrated_db, registry, work=False)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        good = await producer.schedule_recurring_job("tick", {}, "1 second", tenant=TENANT)
        bad = await producer.schedule_recurring_job("tick", {"v": 1}, "1 second", tenant=TENANT)
        await conn.execute(  # as an older release stored it: grows past the limit as jsonb
            "UPDATE pgqueue.schedule SET data = $2::jsonb WHERE id = $1",
            bad.job_id, json.dumps({"x": [1e308] * 1000}),
        )  # fmt: skip
        workers = [_worker(migrated_db, 4.0, tmp_path / f"w{i}.log") for i in range(2)]
        poison: list[uuid.UUID] = []
        for n in range(JOBS):
            await producer.schedule_job("chaos", {"n": n}, tenant=TENANT)
            if n % 100 == 50:
                for kind in ("nul", "surrogate"):
                    result = await producer.schedule_job("poison-error", {"kind": kind},
                                                         tenant=TENANT)  # fmt: skip
                    poison.append(result.job_id)
        done = "SELECT count(*) >= $1 FROM jobs WHERE type = 'chaos' AND status = 'completed'"
        await eventually(lambda: conn.fetchval(done, JOBS), within=120, interval=0.5)
        errors = await conn.fetch(
            "SELECT status::text, error FROM jobs WHERE job_id = ANY($1::uuid[])", poison
        )
        assert {r["status"] for r in errors} == {"failed"}
        texts = {r["error"] for r in errors}
        assert texts == {"RuntimeError: bad \\x00 byte",
                         "FileNotFoundError: [Errno 2] No such file or directory: "
                         "'/data/caf\\udce9.csv'"}  # fmt: skip
        fired = "SELECT count(*) FROM jobs WHERE type = 'tick' AND status = 'completed'"
        assert await conn.fetchval(fired) >= 3
        row = await conn.fetchrow("SELECT failures, last_error FROM pgqueue.schedule WHERE id = $1",
                                  bad.job_id)  # fmt: skip
        assert row["failures"] >= 1 and "bytes as JSON; the limit is" in row["last_error"]
        assert await conn.fetchval("SELECT last_error FROM pgqueue.schedule WHERE id = $1",
                                   good.job_id) is None  # fmt: skip
        stamp = "SELECT now() - last_round_at < interval '5 seconds' FROM pgqueue.maintenance"
        assert await conn.fetchval(stamp)
        chaos = await conn.fetch("SELECT job_id FROM jobs WHERE type = 'chaos'")
        once = await conn.fetchval(
            """SELECT count(*) FROM jobs j WHERE j.type = 'chaos' AND (SELECT count(*) FROM
               job_details d WHERE d.job_id = j.job_id AND d.status = 'completed') = 1"""
        )
        assert once == len(chaos) == JOBS
        assert await disagreements(conn) == []
        assert await crashed_workers(conn) == []
        assert stop_all(workers, 30) == [0, 0]
    finally:
        kill_leftovers(workers)
        await producer.stop()
        await conn.close()
        print_logs(tmp_path)
