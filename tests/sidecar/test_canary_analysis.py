"""The canary analysis on a real sidecar (issue 18): jobs of a baseline and of canaries in the
jobs table; /verdict, /gate (query and Flagger payload), the status page and `jobsight verdict`
all give the same answer: fail with its explanation, pass, or inconclusive."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import asyncpg

from tests.support.processes import jobsight
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import eventually

# $1 version, $2 jobs, $3 failed every n-th job (0: none), $4 error text, $5 job name
JOBS = """
INSERT INTO jobs (tenant, type, status, user_id, runner_type, created_at, updated_at,
                  started_at, finished_at, attempts, worker_version, error)
SELECT '00000000-0000-4000-8000-000000000001', $5,
       (CASE WHEN $3 > 0 AND g % $3 = 0 THEN 'failed' ELSE 'completed' END)::job_status,
       '00000000-0000-4000-8000-000000000001', 'pgqueue',
       t - interval '2 seconds', t, t - interval '1 second', t, 1, $1,
       CASE WHEN $3 > 0 AND g % $3 = 0 THEN $4 || ' after ' || g || ' ms' END
FROM generate_series(1, $2::int) AS g,
     LATERAL (SELECT now() - interval '5 seconds' - (g % 1200) * interval '1 second' AS t) AS x
"""


async def answer(sidecar: SidecarProcess, query: str) -> dict:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(f"{sidecar.url}/verdict?{query}") as response:
            return await response.json()


async def test_fail_pass_and_inconclusive_everywhere(migrated_db: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(migrated_db)
    try:
        await conn.execute(JOBS, "stable", 6000, 50, "KeyError 'x'", "send-email")  # 2%
        await conn.execute(JOBS, "broken", 600, 4, "TimeoutError: smtp", "send-email")  # 25%
        await conn.execute(JOBS, "good", 600, 50, "KeyError 'x'", "send-email")  # 2%
        await conn.execute(JOBS, "young", 12, 0, "", "send-email")
    finally:
        await conn.close()
    sidecar = SidecarProcess(migrated_db, tmp_path, JOBSIGHT_SOURCES="jobs")
    sidecar.start()
    try:

        async def polled() -> bool:
            try:
                body = await answer(sidecar, "version=broken&baseline=stable")
            except (aiohttp.ClientError, OSError):
                return False
            return body.get("analysis", {}).get("answer") == "fail"

        await eventually(polled, 30, "the broken canary judged")
        broken = (await answer(sidecar, "version=broken&baseline=stable"))["analysis"]
        assert broken["overall"]["canary"]["failed"] == 150 and "send-email" in broken["reason"]
        assert broken["rising_errors"][0]["error"] == "TimeoutError: smtp after <n> ms"
        assert (await answer(sidecar, "version=broken&baseline=stable"))["verdict"] == "rollback"
        good = await answer(sidecar, "version=good&baseline=auto")
        assert (good["verdict"], good["analysis"]["answer"]) == ("ok", "pass")
        assert good["analysis"]["baseline"] == "stable"
        young = await answer(sidecar, "version=young&baseline=stable")
        assert (young["verdict"], young["analysis"]["answer"]) == ("inconclusive", "inconclusive")
        series = (await sidecar.scrape())["jobsight_version_jobs"]
        assert series[(("outcome", "finished"), ("version", "broken"))] == 600
        assert series[(("outcome", "failed"), ("version", "broken"))] == 150
        assert series[(("outcome", "failed"), ("version", "stable"))] == 120
        typo = await answer(sidecar, "version=brokn&baseline=stable")
        assert typo["analysis"]["answer"] == "inconclusive"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            payload = {"name": "worker", "namespace": "prod", "phase": "Progressing",
                       "metadata": {"version": "broken", "baseline": "stable"}}  # fmt: skip
            async with session.post(f"{sidecar.url}/gate", json=payload) as response:
                assert response.status == 412
                assert (await response.json())["analysis"]["answer"] == "fail"
            async with session.get(f"{sidecar.url}/gate?version=good&baseline=stable") as r:
                assert r.status == 200
            async with session.get(f"{sidecar.url}/?version=broken&baseline=stable") as r:
                page = await r.text()
                assert 'data-answer="fail"' in page and "TimeoutError: smtp" in page
        done = jobsight("verdict", "--url", sidecar.url, "--version", "broken", "--baseline",
                        "stable")  # fmt: skip
        assert done.returncode == 3 and "canary broken against stable: fail" in done.stdout
        assert jobsight("verdict", "--url", sidecar.url, "--version", "good",
                        "--baseline", "auto").returncode == 0  # fmt: skip
        assert jobsight("verdict", "--url", sidecar.url, "--version", "young",
                        "--baseline", "stable").returncode == 5  # fmt: skip
    finally:
        sidecar.stop()
    direct = jobsight("verdict", "--version", "broken", "--baseline", "stable",
                      env={"DATABASE_URL": migrated_db, "JOBSIGHT_SOURCES": "jobs"})  # fmt: skip
    assert direct.returncode == 3, direct.stdout + direct.stderr


async def test_a_slow_versions_read_keeps_the_counts_and_the_source_up(migrated_db: str) -> None:
    """Counting a very busy window can outlast statement_timeout: the previous counts stay (a
    lock on the table stands in for the slow read here). Reads happen once per 30 s slice."""
    import time
    from datetime import UTC, datetime

    from jobsight.settings import SidecarSettings
    from jobsight.sources import jobs
    from jobsight.sources.base import PollContext
    from jobsight.sources.finished import FinishedCursor
    from jobsight.sources.versions import SLICE_S, VersionCounts, VersionSlice, read_due

    now = time.time()
    kept = VersionCounts(now - SLICE_S - 1, [VersionSlice("a", "v1", 1, 5, 0)], [])
    assert read_due(kept, now) and not read_due(VersionCounts(now, [], []), now)
    settings = SidecarSettings(database_url=migrated_db)
    previous = jobs.JobsSnapshot(FinishedCursor(datetime.now(UTC)), versions=kept)
    async with asyncpg.create_pool(migrated_db, min_size=2, max_size=2) as pool:
        async with pool.acquire() as locker, pool.acquire() as conn:
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
            await conn.execute("SET statement_timeout = '200ms'")
            got = await jobs.JobsSource._versions(
                conn, PollContext(settings, pool, previous), settings
            )
            await conn.execute("RESET statement_timeout")
            await tx.rollback()
        assert got is kept
        async with pool.acquire() as conn:  # not due yet: no read at all
            fresh = VersionCounts(time.time(), [], [])
            ahead = jobs.JobsSnapshot(FinishedCursor(datetime.now(UTC)), versions=fresh)
            ctx = PollContext(settings, pool, ahead)
            assert await jobs.JobsSource._versions(conn, ctx, settings) is fresh


# $1 version, $2 jobs: running for an hour (stuck at the default JOBSIGHT_STUCK_AFTER)
HANGING = """
INSERT INTO jobs (tenant, type, status, user_id, runner_type, created_at, updated_at,
                  started_at, attempts, worker_version)
SELECT '00000000-0000-4000-8000-000000000001', 'send-email', 'processing',
       '00000000-0000-4000-8000-000000000001', 'pgqueue', now() - interval '1 hour',
       now() - interval '1 hour', now() - interval '1 hour', 1, $1
FROM generate_series(1, $2::int)
"""

# $1 version, $2 workers, $3 state: as the pgqueue worker registers itself and the maintainer
# declares it crashed (tests/runners/pgqueue/test_chaos.py shows the real thing, version kept).
WORKERS = """
INSERT INTO pgqueue.worker (id, host, pid, version, queues, state, stopped_at)
SELECT gen_random_uuid(), 'pod-' || g, g, $1, '{send-email}', $3,
       CASE WHEN $3 <> 'running' THEN now() - interval '1 minute' END
FROM generate_series(1, $2::int) AS g
"""


async def test_stuck_jobs_and_crashed_workers_fail_the_canary(
    migrated_db: str, tmp_path: Path
) -> None:
    """A canary whose jobs hang (it finished none) and one whose workers crash-loop are failed
    on that evidence, with the reason naming it; the steady baseline's own are no reason."""
    conn = await asyncpg.connect(migrated_db)
    try:
        await conn.execute(JOBS, "stable", 3000, 50, "KeyError 'x'", "send-email")
        await conn.execute(HANGING, "stable", 1)
        await conn.execute(HANGING, "hung", 30)
        await conn.execute(JOBS, "crashy", 300, 50, "KeyError 'x'", "send-email")
        await conn.execute(WORKERS, "stable", 8, "running")
        await conn.execute(WORKERS, "crashy", 2, "running")
        await conn.execute(WORKERS, "crashy", 14, "crashed")
    finally:
        await conn.close()
    sidecar = SidecarProcess(migrated_db, tmp_path, JOBSIGHT_SOURCES="jobs,pgqueue")
    sidecar.start()
    try:

        async def polled() -> bool:
            try:
                body = await answer(sidecar, "version=crashy&baseline=stable")
            except (aiohttp.ClientError, OSError):
                return False
            return body.get("analysis", {}).get("answer") == "fail"

        await eventually(polled, 30, "the crash-looping canary judged")
        crashy = (await answer(sidecar, "version=crashy&baseline=stable"))["analysis"]
        assert crashy["crashes"]["canary"] == {"workers": 16, "crashed": 14}
        assert "worker crashes: 14 of 16 canary workers" in crashy["reason"]
        hung = (await answer(sidecar, "version=hung&baseline=stable"))["analysis"]
        assert hung["answer"] == "fail", hung["reason"]
        canary = hung["overall"]["canary"]
        assert (canary["stuck"], canary["finished"]) == (30, 0)
        assert "stuck jobs: send-email 30 stuck" in hung["reason"]
        done = jobsight("verdict", "--url", sidecar.url, "--version", "hung", "--baseline",
                        "stable")  # fmt: skip
        assert done.returncode == 3 and "stuck jobs" in done.stdout
        crashed = jobsight("verdict", "--url", sidecar.url, "--version", "crashy", "--baseline",
                           "stable")  # fmt: skip
        assert "crashed pgqueue workers: 14/16 on the canary, 0/8 on the baseline" in crashed.stdout
        status, page = await sidecar.get("/?version=hung&baseline=stable")
        assert status == 200 and "<td>30</td><td>1</td>" in page  # canary stuck, baseline stuck
    finally:
        sidecar.stop()
