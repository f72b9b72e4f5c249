"""The console's actions on a real sidecar (issue 19): an operator retries a failed pgqueue job,
cancels a waiting one, bulk-retries what a search selects after confirming the count, pauses and
resumes a job name; every action is in the audit log. A user who is not an operator, a form
from another site or without its token, and a sidecar with actions off are refused."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import bcrypt
import pytest
import yaml

from jobsight.runners import HandlerRegistry, RetryPolicy
from jobsight.runners.pgqueue import PgQueueJobRunner
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
PASSWORDS = {"alice": "alice-Pa55", "bob": "bob-Pa55"}


def web_config(folder: Path) -> Path:
    users = {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()
             for u, p in PASSWORDS.items()}  # fmt: skip
    path = folder / "web.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": users}))
    return path


async def failed_jobs(url: str, count: int) -> list[uuid.UUID]:
    """Real pgqueue jobs that fail their only attempt."""
    registry = HandlerRegistry()

    @registry.handler("charge-card", retry=RetryPolicy(max_attempts=1))
    async def charge(ctx, data):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"card {data['n']} declined")

    runner = PgQueueJobRunner(url, registry)
    ids = [(await runner.schedule_job("charge-card", {"n": n}, tenant=TENANT)).job_id
           for n in range(count)]  # fmt: skip
    await runner.start()
    conn = await asyncpg.connect(url)
    try:
        done = "SELECT count(*) = $1 FROM jobs WHERE type = 'charge-card' AND status = 'failed'"
        await eventually(lambda: conn.fetchval(done, count), 20, "the jobs failed")
    finally:
        await conn.close()
        await runner.stop(grace=1)
    return ids


@pytest.fixture
async def sidecar(migrated_db: str, tmp_path: Path) -> AsyncIterator[SidecarProcess]:
    process = SidecarProcess(
        migrated_db,
        tmp_path,
        JOBSIGHT_WEB_CONFIG_FILE=str(web_config(tmp_path)),
        JOBSIGHT_CONSOLE_ACTIONS_DATABASE_URL=migrated_db,
        JOBSIGHT_CONSOLE_OPERATORS="alice",
    ).start()
    await process.listening()
    yield process
    process.stop()


def session(user: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"Authorization": aiohttp.encode_basic_auth(user, PASSWORDS[user])},
        timeout=aiohttp.ClientTimeout(total=20),
    )


async def page(client: aiohttp.ClientSession, url: str) -> str:
    async with client.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.text()


def token_of(html: str) -> str:
    found = re.search(r'name="token" value="([0-9a-f]+)"', html)
    assert found, "no action form on the page"
    return found.group(1)


async def test_operator_acts_and_every_action_is_audited(
    migrated_db: str, sidecar: SidecarProcess
) -> None:
    ids = await failed_jobs(migrated_db, 4)
    base = sidecar.url
    async with session("alice") as alice:
        job_page = await page(alice, f"{base}/jobs/{TENANT}/{ids[0]}")
        assert 'id="retry"' in job_page
        form = {"action": "retry", "tenant": str(TENANT), "job_id": str(ids[0]),
                "token": token_of(job_page)}  # fmt: skip
        async with alice.post(f"{base}/actions/job", data=form) as r:
            body = await r.text()
            assert r.status == 200 and "new job" in body, body
        # Bulk: the search's count first, then the run once confirmed.
        search = await page(alice, f"{base}/jobs?name=charge-card&status=failed")
        bulk = {"name": "charge-card", "status": "failed", "action": "retry",
                "token": token_of(search)}  # fmt: skip
        async with alice.post(f"{base}/actions/bulk", data=bulk) as r:
            confirm = await r.text()
            assert 'id="bulk-count"' in confirm and "<b>4</b>" in confirm
        async with alice.post(f"{base}/actions/bulk", data={**bulk, "confirm": "4"}) as r:
            assert r.status == 200 and "4 of 4 jobs done" in await r.text()

        async def listed() -> bool:  # the pgqueue source's next poll sees the retried jobs
            return 'data-queue="charge-card"' in await page(alice, f"{base}/queues")

        await eventually(listed, 10, "the queue listed")
        queues = await page(alice, f"{base}/queues")
        pause = {"action": "pause", "name": "charge-card", "token": token_of(queues)}
        async with alice.post(f"{base}/actions/queue", data=pause) as r:
            assert r.status == 200 and "paused" in await r.text()
        audit = await page(alice, f"{base}/audit")
    assert audit.count('class="audit-entry"') == 3
    assert 'data-action="bulk retry" data-outcome="done"' in audit
    assert 'data-action="retry" data-outcome="done"' in audit
    conn = await asyncpg.connect(migrated_db)
    try:
        retried = await conn.fetchval("SELECT count(*) FROM pgqueue.job WHERE retry_of IS NOT NULL")
        assert retried == 5  # one, then the four the search selected
        assert await conn.fetchval("SELECT paused_by FROM pgqueue.paused") == "alice"
        who = await conn.fetch("SELECT DISTINCT operator FROM jobsight_sidecar.console_audit")
        assert [r["operator"] for r in who] == ["alice"]
    finally:
        await conn.close()


async def test_refused_to_others_across_sites_and_without_a_token(
    migrated_db: str, sidecar: SidecarProcess
) -> None:
    ids = await failed_jobs(migrated_db, 1)
    base, url = sidecar.url, f"{sidecar.url}/jobs/{TENANT}/{ids[0]}"
    async with session("alice") as alice:
        token = token_of(await page(alice, url))
        form = {"action": "retry", "tenant": str(TENANT), "job_id": str(ids[0]), "token": token}
        async with alice.post(f"{base}/actions/job", data={**form, "token": "0" * 64}) as r:
            assert r.status == 403 and "stale" in await r.text()
        cross = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        async with alice.post(f"{base}/actions/job", data=form, headers=cross) as r:
            assert r.status == 403 and "another site" in await r.text()
    async with session("bob") as bob:
        assert 'id="retry"' not in await page(bob, url)  # no button for a non-operator
        async with bob.post(f"{base}/actions/job", data=form) as r:
            assert r.status == 403 and "bob is not one" in await r.text()
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.post(f"{base}/actions/job", data=form) as r,
    ):
        assert r.status == 401
    conn = await asyncpg.connect(migrated_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobsight_sidecar.console_audit") == 0
        assert (
            await conn.fetchval("SELECT count(*) FROM pgqueue.job WHERE retry_of IS NOT NULL") == 0
        )
    finally:
        await conn.close()


async def test_actions_off_by_default(migrated_db: str, tmp_path: Path) -> None:
    process = SidecarProcess(migrated_db, tmp_path).start()
    try:
        await process.listening()
        async with aiohttp.ClientSession() as client:
            async with client.post(process.url + "/actions/job", data={"action": "retry"}) as r:
                assert r.status == 403 and "actions are off" in await r.text()
    finally:
        process.stop()
