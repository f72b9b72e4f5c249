"""Chaos: 2,000 jobs, worker processes SIGKILLed at random moments and restarted. In the end every
job completed exactly once, none lost, each `jobs` row agrees with its queue job, and every kill
shows as a crash (host, pid, version) in the worker registry."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess

import asyncpg
import pytest

from jobsight.runners.pgqueue import PgQueueJobRunner
from tests.support.handlers.chaos import registry
from tests.support.pgqueue import disagreements
from tests.support.processes import start_jobsight
from tests.support.transitions import illegal_transitions, install_status_audit
from tests.support.waiting import eventually

JOBS = 2000
WORKERS = 3
KILLS = 6


def _start_worker(url: str) -> subprocess.Popen[bytes]:
    return start_jobsight(
        "worker", "--handlers", "tests.support.handlers.chaos:registry", "--concurrency", "10",
        "--heartbeat-interval", "0.3", "--heartbeat-timeout", "1.5", "--database-url", url,
        env={"JOBSIGHT_WORKER_VERSION": "chaos-1"},
    )  # fmt: skip


@pytest.mark.slow
async def test_sigkilled_workers_lose_no_job(migrated_db: str) -> None:
    audit = await asyncpg.connect(migrated_db)
    await install_status_audit(audit)  # recovery of killed workers' jobs is audited too
    await audit.close()
    producer = PgQueueJobRunner(migrated_db, registry, work=False)
    tenant = "4b1d5e7a-0000-4000-8000-000000000c4a"
    for start in range(0, JOBS, 500):
        await producer.schedule_many("chaos", [{"n": n} for n in range(start, start + 500)],
                                     tenant=tenant)  # fmt: skip
    await producer.stop()
    conn = await asyncpg.connect(migrated_db)
    workers = [_start_worker(migrated_db) for _ in range(WORKERS)]
    killed: list[int] = []
    rng = random.Random(20261123)
    try:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.8, 2.0))
            victim = workers.pop(rng.randrange(len(workers)))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed.append(victim.pid)
            workers.append(_start_worker(migrated_db))
        done = "SELECT count(*) = $1 FROM jobs WHERE status = 'completed'"
        await eventually(lambda: conn.fetchval(done, JOBS), within=120, interval=0.5)
        crashed = "SELECT count(*) = $1 FROM pgqueue.worker WHERE state = 'crashed'"
        await eventually(lambda: conn.fetchval(crashed, KILLS), within=10, interval=0.2)

        assert await disagreements(conn) == []
        assert await illegal_transitions(conn) == []
        # Every job completed, so every one has left the queue (jobs rows are the record).
        assert await conn.fetchval("SELECT count(*) FROM pgqueue.job") == 0
        once = await conn.fetchval(
            "SELECT count(*) FROM (SELECT job_id FROM job_details WHERE status = 'completed'"
            " GROUP BY job_id HAVING count(*) = 1) t"
        )
        assert once == JOBS  # each job completed exactly once
        rows = await conn.fetch(
            "SELECT pid, host, version FROM pgqueue.worker WHERE state = 'crashed'"
        )
        assert sorted(r["pid"] for r in rows) == sorted(killed)
        assert all(r["host"] and r["version"] == "chaos-1" for r in rows)
        recovered = await conn.fetchval("SELECT count(*) FROM jobs WHERE attempts > 1")
        assert recovered > 0  # the kills did interrupt work, which ran again
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        stopped = await conn.fetchval("SELECT count(*) FROM pgqueue.worker WHERE state = 'stopped'")
        await conn.close()
    assert stopped == WORKERS  # the survivors stopped cleanly


async def test_the_cli_worker_runs_on_uvloop(migrated_db: str) -> None:
    """`jobsight worker --runner pgqueue` runs its handlers on uvloop (a dependency on Linux)."""
    producer = PgQueueJobRunner(migrated_db, registry, work=False)
    job = await producer.schedule_job(
        "event-loop", {}, tenant="4b1d5e7a-0000-4000-8000-000000000c4b"
    )
    await producer.stop()
    worker = _start_worker(migrated_db)
    conn = await asyncpg.connect(migrated_db)
    try:
        done = "SELECT status = 'completed' FROM jobs WHERE job_id = $1"
        await eventually(lambda: conn.fetchval(done, job.job_id), within=30, interval=0.2)
        progress = await conn.fetchval("SELECT progress FROM jobs WHERE job_id = $1", job.job_id)
        assert progress == 1.0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await conn.close()
