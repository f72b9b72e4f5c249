"""The console in Debian's Chromium through Playwright, on real work (issue 19): jobs run by
pgqueue and by Temporal workers, a real pg-boss schema written by Node, schedules of both
engines. Every page is opened; a search is made and a job opened; a failure group is followed to
its jobs; an operator retries a job and finds it in the audit log; a non-operator is refused, and
so is everyone on a sidecar with actions off. A screenshot of each page goes to tests/artifacts
(and, with CONSOLE_SCREENSHOTS=<folder>, there: `make screenshots` refreshes docs/console)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt
import pytest
import yaml

from jobsight.runners import HandlerRegistry, RetryPolicy
from jobsight.runners.factory import RunnerSettings, create_runner
from jobsight.runners.pgqueue import PgQueueSettings
from jobsight.runners.temporal import TemporalSettings
from tests.support.paths import ROOT
from tests.support.pgboss import run_scenario
from tests.support.sidecar import SidecarProcess
from tests.support.tools import require_tool
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
PASSWORDS = {"alice": "alice-Pa55", "bob": "bob-Pa55"}
ARTIFACTS = ROOT / "tests" / "artifacts" / "console"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def registry() -> HandlerRegistry:
    handlers = HandlerRegistry()

    @handlers.handler("generate-invoice", retry=RetryPolicy(max_attempts=2,
                      initial_interval=timedelta(milliseconds=50)))  # fmt: skip
    async def invoice(ctx, data):  # type: ignore[no-untyped-def]
        if data["n"] % 4 == 0:
            raise ConnectionError(f"billing API 10.0.0.{data['n']} refused 'invoice-{data['n']}'")

    @handlers.handler("send-email")
    async def email(ctx, data):  # type: ignore[no-untyped-def]
        return None

    @handlers.handler("import", retry=RetryPolicy(max_attempts=1))
    async def import_(ctx, data):  # type: ignore[no-untyped-def]
        if data["n"] % 3 == 0:
            raise ValueError(f"row {data['n']}: column 'amount' is not a number")

    @handlers.handler("cleanup")
    async def cleanup(ctx, data):  # type: ignore[no-untyped-def]
        return None

    return handlers


@pytest.fixture
async def real_work(
    migrated_db: str, temporal_address: str, pgboss_installs: dict[str, str]
) -> AsyncIterator[str]:
    """Jobs of both engines (some failed), schedules of both, and a pg-boss schema."""
    queue = f"console-{uuid.uuid4().hex[:8]}"
    settings = RunnerSettings(
        database_url=migrated_db,
        runner_type="pgqueue",
        routes=(("import", "temporal"), ("*", "pgqueue")),
        engine_options={
            "pgqueue": PgQueueSettings(poll_interval=timedelta(milliseconds=100),
                                       maintenance_interval=timedelta(milliseconds=100)),
            "temporal": TemporalSettings(address=temporal_address, task_queue=queue),
        },
    )  # fmt: skip
    runner = await create_runner(settings, registry())
    await runner.start()
    try:
        for n in range(24):
            await runner.schedule_job("generate-invoice", {"n": n}, tenant=TENANT)
            await runner.schedule_job("send-email", {"n": n}, tenant=TENANT)
        for n in range(9):
            await runner.schedule_job("import", {"n": n}, tenant=TENANT)
        await runner.schedule_recurring_job("cleanup", {}, "0 3 * * *", tenant=TENANT)
        await runner.schedule_recurring_job("import", {"n": 1}, "0 4 * * *", tenant=TENANT)
        conn = await asyncpg.connect(migrated_db)
        try:
            finished = "SELECT count(*) = 57 FROM jobs WHERE finished_at IS NOT NULL"
            await eventually(lambda: conn.fetchval(finished), 60, "the jobs finished")
        finally:
            await conn.close()
        await run_scenario(pgboss_installs["v12"], "v12", migrated_db)
        yield queue
    finally:
        await runner.stop(grace=1)


def web_config(folder: Path) -> Path:
    users = {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()
             for u, p in PASSWORDS.items()}  # fmt: skip
    path = folder / "web.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": users}))
    return path


async def shot(page: Any, name: str) -> None:
    folders = [ARTIFACTS]
    if os.environ.get("CONSOLE_SCREENSHOTS"):
        folders.append(Path(os.environ["CONSOLE_SCREENSHOTS"]))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def test_console_in_chromium(
    migrated_db: str, temporal_address: str, real_work: str, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium")
    require_tool(chromium is not None, "Debian's chromium")
    from playwright.async_api import async_playwright

    sidecar = SidecarProcess(
        migrated_db,
        tmp_path,
        JOBSIGHT_SOURCES="jobs,pgqueue,pgboss,temporal,postgres",
        TEMPORAL_ADDRESS=temporal_address,
        TEMPORAL_UI_URL="http://temporal-ui.example",
        JOBSIGHT_TRACE_URL="http://grafana.example/explore?traceId={trace_id}",
        JOBSIGHT_WEB_CONFIG_FILE=str(web_config(tmp_path)),
        JOBSIGHT_CONSOLE_ACTIONS_DATABASE_URL=migrated_db,
        JOBSIGHT_CONSOLE_OPERATORS="alice",
    ).start()
    try:
        await sidecar.listening()
        base = sidecar.url
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            alice = await browser.new_context(
                http_credentials={"username": "alice", "password": PASSWORDS["alice"]},
                viewport={"width": 1280, "height": 900},
            )
            page = await alice.new_page()

            # Overview: the verdict, and every job name's hour once the jobs source polled.
            async def overview_ready() -> bool:
                await page.goto(base + "/")
                return await page.locator('tr.job-name[data-job-name="import"]').count() == 1

            await eventually(overview_ready, 30, "the overview's job names")
            assert await page.locator("#verdict").get_attribute("data-verdict")
            assert await page.locator("tr.job-name svg.spark").count() >= 4
            await shot(page, "overview")

            # Queues: pgqueue, pg-boss and Temporal side by side.
            async def all_engines() -> bool:
                await page.goto(base + "/queues")
                engines = await page.locator("tr.queue").evaluate_all(
                    "rows => rows.map(r => r.dataset.engine)"
                )
                return {"pgqueue", "pg-boss", "temporal"} <= set(engines)

            await eventually(all_engines, 30, "queues of all three engines")
            await shot(page, "queues")

            # Failures: the invoice's refusals are one group whatever the address and number.
            await page.goto(base + "/failures")
            group = page.locator("tr.failure-group", has_text="billing API")
            assert await group.count() == 1
            assert "generate-invoice" in await group.inner_text()
            await shot(page, "failures")
            await group.locator("a").first.click()
            assert await page.locator("#group").count() == 1
            assert await page.locator("tr.attempt").count() == 12  # 6 jobs x 2 attempts
            await shot(page, "failure-group")
            await page.locator("tr.attempt a").first.click()
            assert "billing API" in await page.locator("#job-error").inner_text()

            # Jobs: search by the form, open a Temporal job, see its links.
            await page.goto(base + "/jobs")
            await page.get_by_label("job name").fill("import")
            await page.get_by_label("status").select_option("failed")
            await page.get_by_role("button", name="Search").click()
            assert "name=import" in page.url and "status=failed" in page.url
            assert await page.locator("tr.job").count() == 3
            await shot(page, "jobs")
            await page.locator("tr.job a").first.click()
            assert await page.locator("#temporal-link").count() == 1
            trace = await page.locator("#trace-link").get_attribute("href")
            assert trace and trace.startswith("http://grafana.example/explore?traceId=")
            assert await page.locator("#payload-hidden").count() == 1
            await shot(page, "job")

            # Schedules of both engines.
            await page.goto(base + "/schedules")
            assert await page.locator('tr.schedule[data-engine="pgqueue"]').count() == 1
            assert await page.locator('tr.schedule[data-engine="temporal"]').count() == 1
            await shot(page, "schedules")

            # An operator's retry, then the audit log.
            await page.goto(base + "/jobs?name=generate-invoice&status=failed")
            await page.locator("tr.job a").first.click()
            await page.locator("#retry").click()
            assert "new job" in await page.locator("#outcome").inner_text()
            await page.goto(base + "/audit")
            entry = page.locator("tr.audit-entry").first
            assert await entry.get_attribute("data-outcome") == "done"
            assert "alice" in await entry.inner_text()
            await shot(page, "audit")

            # A user who is not an operator sees no button and is refused if they post anyway.
            bob = await browser.new_context(
                http_credentials={"username": "bob", "password": PASSWORDS["bob"]}
            )
            bob_page = await bob.new_page()
            await bob_page.goto(base + "/jobs?name=generate-invoice&status=failed")
            await bob_page.locator("tr.job a").first.click()
            assert await bob_page.locator("#retry").count() == 0
            refused = await bob_page.request.post(
                base + "/actions/job", form={"action": "retry", "token": "x"}
            )
            assert refused.status == 403 and "bob is not one" in await refused.text()
            await browser.close()
    finally:
        sidecar.stop()


async def test_actions_off_in_chromium(migrated_db: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    require_tool(chromium is not None, "Debian's chromium")
    from playwright.async_api import async_playwright

    sidecar = SidecarProcess(migrated_db, tmp_path).start()
    try:
        await sidecar.listening()
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.goto(sidecar.url + "/audit")
            assert "Actions are off" in await page.locator("main").inner_text()
            refused = await page.request.post(sidecar.url + "/actions/queue", form={})
            assert refused.status == 403 and "actions are off" in await refused.text()
            await browser.close()
    finally:
        sidecar.stop()
