"""The numbers a real `jobsight serve` exports for the jobs, pgqueue and pgboss sources, against
the database's own answer at a quiescent moment: pgqueue work (completed, failed, waiting,
deferred, running) and a real pg-boss 12 in known states in the same database. Compared: jobs
by name, runner and status, the completed / failed / cancelled counters and the duration
histogram's count; pgqueue depth by queue and state, ready jobs, workers alive, recent failures;
pg-boss depth by queue and state, and its completed / failed counters against the jobs pg-boss's
table holds as finished since the sidecar started (its default settings: no persistQueueStats)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from jobsight.runners import HandlerRegistry, RetryPolicy
from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings
from tests.support.pgboss import run_scenario
from tests.support.scrape import Samples
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-00000000711e")
FAST = PgQueueSettings(poll_interval=timedelta(milliseconds=100),
                       maintenance_interval=timedelta(milliseconds=100),
                       heartbeat_interval=timedelta(milliseconds=200),
                       heartbeat_timeout=timedelta(seconds=2))  # fmt: skip


def _registry(release: asyncio.Event) -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("render-report")
    async def render(ctx, data):  # type: ignore[no-untyped-def]
        if data.get("fail"):
            raise RuntimeError("no template")

    @registry.handler("sync-ledger", retry=RetryPolicy(max_attempts=1))
    async def hold(ctx, data):  # type: ignore[no-untyped-def]
        await release.wait()

    return registry


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return samples.get(name, {})


async def test_every_exported_number_matches_the_database(
    migrated_db: str, tmp_path: Path, pgboss_installs: dict[str, str]
) -> None:
    release = asyncio.Event()
    runner = PgQueueJobRunner(migrated_db, _registry(release), FAST)
    await runner.start()
    conn = await asyncpg.connect(migrated_db)
    sidecar = SidecarProcess(migrated_db, tmp_path, JOBSIGHT_SOURCES="jobs,pgqueue,pgboss")
    try:
        await run_scenario(pgboss_installs["v12"], "v12", migrated_db)
        await asyncio.sleep(0.5)  # past the sidecar's commit lag (300 ms): not counted
        started = await conn.fetchval("SELECT now()")
        sidecar.start()  # watching before the work: its counters count every finished job
        await eventually(lambda: _polled(sidecar), 30, "a sidecar that has polled everything")
        boss = await run_scenario(pgboss_installs["v12"], "v12", migrated_db, "finished", "9")
        assert boss["own"] == {"completed": 6, "failed": 3}
        for n in range(7):
            await runner.schedule_job("render-report", {"fail": n % 3 == 0}, tenant=TENANT)
        for _ in range(2):
            await runner.schedule_job("sync-ledger", {}, tenant=TENANT)  # running, held
        later = datetime.now(UTC) + timedelta(hours=1)
        await runner.schedule_job_at("render-report", {}, later, tenant=TENANT)  # deferred
        finished = "SELECT count(*) FROM jobs WHERE status IN ('completed', 'failed')"
        await eventually(lambda: _equals(conn, finished, 7), 20)
        running = "SELECT count(*) FROM pgqueue.job WHERE state = 'active'"
        await eventually(lambda: _equals(conn, running, 2), 20)
        await run_scenario(pgboss_installs["v12"], "v12", migrated_db, "settle")
        await asyncio.sleep(2.5)  # quiescent: nothing changes now; let a poll pass
        got = await sidecar.scrape()
        await _compare_jobs(conn, got)
        await _compare_pgqueue(conn, got)
        await _compare_pgboss(conn, got, started)
    finally:
        release.set()
        sidecar.stop()
        await runner.stop(grace=1)
        await conn.close()


async def _equals(conn: asyncpg.Connection, query: str, n: int) -> bool:
    return bool(await conn.fetchval(query) == n)


async def _polled(sidecar: SidecarProcess) -> bool:
    return all(
        [await sidecar.value("jobsight_source_up", source=s) == 1
         for s in ("jobs", "pgqueue", "pgboss")]
    )  # fmt: skip


async def _compare_jobs(conn: asyncpg.Connection, got: Samples) -> None:
    unfinished = {
        (("job_name", r["type"]), ("runner", r["runner_type"]), ("status", r["status"])): r["n"]
        for r in await conn.fetch(
            "SELECT type, runner_type, status::text, count(*) AS n FROM jobs"
            " WHERE finished_at IS NULL GROUP BY 1, 2, 3"
        )
    }
    exported = {k: v for k, v in series(got, "jobsight_jobs").items() if v}
    assert exported == unfinished
    for status in ("completed", "failed", "cancelled"):
        want = {
            (("job_name", r["type"]), ("runner", r["runner_type"])): r["n"]
            for r in await conn.fetch(
                "SELECT type, runner_type, count(*) AS n FROM jobs WHERE status::text = $1"
                " GROUP BY 1, 2",
                status,
            )
        }
        exported = {k: v for k, v in series(got, f"jobsight_jobs_{status}_total").items() if v}
        assert exported == want, status
    durations = series(got, "jobsight_job_duration_seconds_count")
    finished = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE status IN ('completed', 'failed')"
    )
    assert sum(durations.values()) == finished


async def _compare_pgqueue(conn: asyncpg.Connection, got: Samples) -> None:
    depth = {
        (("queue", r["name"]), ("state", r["state"])): r["n"]
        for r in await conn.fetch(
            "SELECT name, state::text, count(*) AS n FROM pgqueue.job WHERE state <= 'active'"
            " GROUP BY 1, 2"
        )
    }
    exported = {k: v for k, v in series(got, "jobsight_pgqueue_jobs").items() if v}
    assert exported == depth
    ready = await conn.fetchval(
        "SELECT count(*) FROM pgqueue.job WHERE state < 'active' AND start_after <= now()"
    )
    assert sum(series(got, "jobsight_pgqueue_ready_jobs").values()) == ready
    alive = await conn.fetchval("SELECT count(*) FROM pgqueue.worker WHERE state = 'running'")
    assert series(got, "jobsight_pgqueue_workers_alive")[()] == alive
    failed = await conn.fetchval("SELECT count(*) FROM pgqueue.job WHERE state = 'failed'")
    assert sum(series(got, "jobsight_pgqueue_recent_failed_jobs").values()) == failed


async def _compare_pgboss(conn: asyncpg.Connection, got: Samples, started: datetime) -> None:
    rows = await conn.fetch(
        "SELECT name, state::text, count(*) FILTER (WHERE start_after <= now()) AS now_n,"
        " count(*) FILTER (WHERE start_after > now()) AS later_n, count(*) AS n"
        " FROM pgboss.job GROUP BY 1, 2"
    )
    want: dict[tuple[tuple[str, str], ...], float] = {}
    for r in rows:
        queue = ("queue", r["name"])
        if r["state"] in ("created", "retry"):
            for state, n in (("ready", r["now_n"]), ("deferred", r["later_n"])):
                key = (queue, ("state", state))
                want[key] = want.get(key, 0) + n
        elif r["state"] in ("active", "failed"):
            want[(queue, ("state", r["state"]))] = r["n"]
    exported = {k: v for k, v in series(got, "jobsight_pgboss_jobs").items() if v}
    assert exported == {k: v for k, v in want.items() if v}
    finished = await conn.fetch(
        "SELECT name, state::text, count(*) AS n FROM pgboss.job"
        " WHERE state IN ('completed', 'failed') AND completed_on > $1 GROUP BY 1, 2",
        started,
    )
    for state in ("completed", "failed"):
        counted = series(got, f"jobsight_pgboss_jobs_{state}_total")
        want = {(("queue", r["name"]),): r["n"] for r in finished if r["state"] == state}
        assert {k: v for k, v in counted.items() if v} == want, state
    assert sum(r["n"] for r in finished) == 9  # the scenario's jobs, none from before
