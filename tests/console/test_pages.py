"""The console's pages over HTTP on a real sidecar and database: each page renders the jobs it
should, the search filters and pages through them, bad input is one clear 400, and a slow query
is cut and said so (issue 19)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.support.sidecar import SidecarProcess
from tests.support.waiting import eventually

TENANT = "00000000-0000-4000-8000-000000000001"

# $1 job name, $2 jobs, $3 fail every n-th (0: none), $4 version, $5 error text
JOBS = """
WITH made AS (
  INSERT INTO jobs (tenant, job_id, type, status, user_id, runner_type, created_at, updated_at,
                    started_at, finished_at, attempts, worker_version, error, metadata)
  SELECT $6::uuid, gen_random_uuid(), $1,
         (CASE WHEN $3 > 0 AND g % $3 = 0 THEN 'failed' ELSE 'completed' END)::job_status,
         $6::uuid, 'pgqueue', (t - interval '3 seconds')::timestamp, t::timestamp,
         t - interval '1 second', t, 1, $4,
         CASE WHEN $3 > 0 AND g % $3 = 0 THEN $5 || ' id=' || g END, '{"secret": "s3cret"}'
  FROM generate_series(1, $2::int) AS g,
       LATERAL (SELECT now() - (g % 3000) * interval '1 second' AS t) AS x
  RETURNING tenant, job_id, status, started_at, finished_at, error, worker_version
)
INSERT INTO job_details (tenant, job_id, step_name, status, processed_at, attempt, started_at,
                         finished_at, error, worker_version)
SELECT tenant, job_id, 'attempt', status, finished_at::timestamp, 1, started_at, finished_at,
       error, worker_version
FROM made
"""


@pytest.fixture
async def seeded(migrated_db: str) -> str:
    conn = await asyncpg.connect(migrated_db)
    try:
        await conn.execute(JOBS, "send-email", 400, 10, "v2", "SMTPError: 'mx1' refused", TENANT)
        await conn.execute(JOBS, "import", 130, 0, "v1", "", TENANT)
    finally:
        await conn.close()
    return migrated_db


@pytest.fixture
async def console(seeded: str, tmp_path: Path):
    sidecar = SidecarProcess(seeded, tmp_path, JOBSIGHT_SOURCES="jobs,pgqueue").start()
    try:
        await sidecar.listening()
        yield sidecar
    finally:
        sidecar.stop()


async def test_every_page_renders_real_jobs(console: SidecarProcess) -> None:
    async def polled() -> bool:
        try:
            status, page = await console.get("/")
        except OSError:  # not listening yet
            return False
        return status == 200 and 'data-job-name="send-email"' in page

    await eventually(polled, 30, "the overview's job names")
    _, overview = await console.get("/")
    assert re.search(r'data-job-name="send-email".*?>400<', overview, re.S)
    assert "10.0%" in overview and "<svg" in overview
    status, failures = await console.get("/failures")
    assert status == 200 and "SMTPError: &lt;value&gt; refused id=&lt;n&gt;" in failures
    key = re.search(r'class="failure-group" data-key="([0-9a-f]+)"', failures)
    assert key is not None
    status, group = await console.get(f"/failures?window=24h&group={key.group(1)}")
    assert status == 200 and group.count('class="attempt"') == 40
    status, queues = await console.get("/queues")
    assert status == 200 and "Queues" in queues
    status, schedules = await console.get("/schedules")
    assert status == 200 and 'id="pgqueue-schedules"' in schedules


async def test_search_filters_pages_and_opens_a_job(console: SidecarProcess) -> None:
    status, first = await console.get("/jobs?name=send-email&status=failed")
    assert status == 200 and first.count('class="job"') == 40
    status, page = await console.get("/jobs?name=import")
    assert page.count('class="job"') == 50
    seen = set(re.findall(r'href="/jobs/[0-9a-f-]+/([0-9a-f-]+)"', page))
    pages = 1
    while (more := re.search(r'id="next-page" href="([^"]+)"', page)) is not None:
        status, page = await console.get(more.group(1).replace("&amp;", "&"))
        assert status == 200
        seen |= set(re.findall(r'href="/jobs/[0-9a-f-]+/([0-9a-f-]+)"', page))
        pages += 1
    assert (len(seen), pages) == (130, 3)  # every job once, in three pages
    job_id = sorted(seen)[0]
    status, job = await console.get(f"/jobs/{TENANT}/{job_id}")
    assert status == 200 and 'id="attempts"' in job and 'class="attempt"' in job, job
    assert "s3cret" not in job and 'id="payload-hidden"' in job
    assert job_id.replace("-", "") in job  # the trace id


@pytest.mark.parametrize(
    "query",
    ["status=sleeping", "tenant=not-a-uuid", "since=yesterday", "after=%%%", "runner=cron",
     "name=" + "x" * 300, "name=a%00b"],
)  # fmt: skip
async def test_bad_input_is_one_clear_400(console: SidecarProcess, query: str) -> None:
    status, page = await console.get(f"/jobs?{query}")
    assert status == 400 and 'id="page-error"' in page, page


async def test_undecodable_input_is_searched_for_not_a_crash(console: SidecarProcess) -> None:
    """Bytes that are not UTF-8 (a lone surrogate's encoding) arrive as replacement characters:
    a search that matches nothing, not an error."""
    status, page = await console.get("/jobs?version=%ED%A0%80")
    assert status == 200 and "No job matches" in page


async def test_unknown_job_is_404(console: SidecarProcess) -> None:
    status, page = await console.get(f"/jobs/{TENANT}/{uuid.uuid4()}")
    assert status == 404 and "no job" in page
    status, _ = await console.get("/jobs/x/y")
    assert status == 404


async def test_a_slow_query_is_cut_and_said(seeded: str, tmp_path: Path) -> None:
    """A search that outlasts JOBSIGHT_CONSOLE_QUERY_TIMEOUT (a lock stands in for a huge scan)
    is cancelled, and the page says to narrow it; the status page keeps serving the verdict."""
    sidecar = SidecarProcess(
        seeded, tmp_path, JOBSIGHT_SOURCES="jobs", JOBSIGHT_CONSOLE_QUERY_TIMEOUT="500ms"
    ).start()
    locker = await asyncpg.connect(seeded)
    try:
        await sidecar.listening()
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        status, page = await sidecar.get("/jobs?name=import")
        assert status == 503 and "narrow the search" in page
        await tx.rollback()
        status, page = await sidecar.get("/jobs?name=import")
        assert status == 200 and page.count('class="job"') == 50
    finally:
        await locker.close()
        sidecar.stop()


async def test_a_database_that_is_down_is_said_on_every_page(tmp_path: Path) -> None:
    sidecar = SidecarProcess("postgresql://nobody:s3cret@127.0.0.1:9/none", tmp_path).start()
    try:
        await sidecar.listening()
        for path in ("/jobs", "/failures", "/schedules", f"/jobs/{TENANT}/{uuid.uuid4()}"):
            status, page = await sidecar.get(path)
            assert status == 503 and "the database cannot be read" in page, path
            assert "s3cret" not in page
        status, page = await sidecar.get("/")
        assert status == 200 and "Not shown: the database cannot be read" in page
    finally:
        sidecar.stop()
