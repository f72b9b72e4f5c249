"""End to end: the local stack under load (pgqueue and Temporal workers, pg-boss 12 queues), the
sidecar, Debian's Prometheus scraping it with the generated rules, and Alertmanager with a
webhook receiver here. Every PromQL expression of every dashboard panel and every rule is run
against that Prometheus: each must parse, and each panel must return data. Then a burst of
failures must bring the rollback alert to the webhook."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from jobsight.dashboards.build import expressions
from jobsight.devstack.localstack import free_port
from jobsight.runners import HandlerRegistry
from jobsight.runners.fallback import BreakerJobRunner
from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings
from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings
from jobsight.settings import load_settings
from jobsight.sidecar.app import serve
from tests.support.handlers.gateway import registry as gateway_registry
from tests.support.paths import ROOT
from tests.support.pgboss import run_scenario
from tests.support.tools import require_tool
from tests.support.waiting import eventually

RULES = ROOT / "alerts" / "generated" / "jobsight-rules.yaml"
DASHBOARDS = ROOT / "dashboards" / "generated"
TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000f1")
VARIABLES = {
    "$job_name": ".*",
    "$runner": ".*",
    "$queue": ".*",
    "$namespace": ".*",
    "$job": "jobsight",
    "$__rate_interval": "30s",
}


def handlers() -> HandlerRegistry:
    """The health-gateway tests' handlers (a quick job, a failing one), plus a Temporal job."""
    reg = gateway_registry()

    @reg.handler("import")
    async def temporal_import(ctx, data):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)

    return reg


@contextlib.asynccontextmanager
async def process(*command: str, log: Path) -> AsyncIterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def http_json(url: str, params: dict | None = None) -> dict:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url, params=params) as response:
            return await response.json()


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


@pytest.mark.slow
async def panel_problems(prom_url: str) -> list[str]:
    """Every dashboard panel's queries against the real Prometheus: errors, and panels with no
    data at all."""
    problems = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for title, exprs in expressions(json.loads(path.read_text())):
            returned = 0
            for expr in exprs:
                body = await http_json(f"{prom_url}/api/v1/query", {"query": substitute(expr)})
                if body.get("status") != "success":
                    problems.append(f"{path.stem} / {title}: {body.get('error')}")
                    continue
                returned += len(body["data"]["result"])
            if not returned:
                problems.append(f"{path.stem} / {title}: no data")
    return problems


async def test_dashboards_and_rules_against_real_prometheus_and_alertmanager(
    migrated_db: str,
    temporal_address: str,
    tmp_path: Path,
    pgboss_installs: dict[str, str],
):
    for tool in ("prometheus", "prometheus-alertmanager"):
        require_tool(shutil.which(tool) is not None, f"{tool} (Debian package)")
    task_queue = f"e2e-{uuid.uuid4().hex[:8]}"
    ports = {name: free_port() for name in ("sidecar", "prometheus", "alertmanager", "hook")}

    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.extend((await request.json())["alerts"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/alerts", hook)
    hook_runner = web.AppRunner(app)
    await hook_runner.setup()
    await web.TCPSite(hook_runner, "127.0.0.1", ports["hook"]).start()

    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": "jobsight",
                        "static_configs": [{"targets": [f"127.0.0.1:{ports['sidecar']}"]}],
                    }
                ],
            }
        )
    )
    (tmp_path / "alertmanager.yml").write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "hook",
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "hook",
                        "webhook_configs": [{"url": f"http://127.0.0.1:{ports['hook']}/alerts"}],
                    }
                ],
            }
        )
    )
    settings = load_settings(
        {
            "DATABASE_URL": migrated_db,
            "TEMPORAL_ADDRESS": temporal_address,
            "JOBSIGHT_HOST": "127.0.0.1",
            "JOBSIGHT_PORT": str(ports["sidecar"]),
            "JOBSIGHT_SOURCES": "jobs,pgqueue,pgboss,postgres,temporal",
            "JOBSIGHT_TEMPORAL_TASK_QUEUES": task_queue,
            "JOBSIGHT_POLL_INTERVAL": "1s",
            "JOBSIGHT_COMMIT_LAG": "200ms",
            "JOBSIGHT_TRIGGER_HOLD": "0",
            # A job name with both objectives, so that the objectives row has data to draw.
            "JOBSIGHT_OBJECTIVES": "generate-invoice: 99% succeed, 90% start within 30s",
            "JOBSIGHT_ERROR_RATE_WINDOW": "1m",
            "JOBSIGHT_ERROR_RATE_MIN_SAMPLE": "5",
        }
    )
    pgqueue = PgQueueJobRunner(
        migrated_db, handlers(), PgQueueSettings(poll_interval=timedelta(milliseconds=200))
    )
    temporal = BreakerJobRunner(  # as create_runner makes it: its breaker's row feeds panels
        TemporalJobRunner(migrated_db, handlers(),
                          TemporalSettings(address=temporal_address, task_queue=task_queue)),
        fallback=None,
    )  # fmt: skip
    stop, stop_load = asyncio.Event(), asyncio.Event()

    async def load() -> None:
        while not stop_load.is_set():
            await pgqueue.schedule_job("generate-invoice", {}, tenant=TENANT)
            await temporal.schedule_job("import", {}, tenant=TENANT)
            await asyncio.sleep(0.2)

    sidecar = asyncio.create_task(serve(settings, stop, handle_signals=False))
    prom_url = f"http://127.0.0.1:{ports['prometheus']}"
    try:
        async with (
            process(
                "prometheus-alertmanager",
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",
                log=tmp_path / "alertmanager.log",
            ),
            process(
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                log=tmp_path / "prometheus.log",
            ),
        ):
            await pgqueue.start()
            await temporal.start()
            # One job waiting for later, so the queue always has a waiting row to report.
            later = datetime.now(UTC) + timedelta(hours=1)
            await pgqueue.schedule_job_at("generate-invoice", {}, later, tenant=TENANT)
            producer = asyncio.create_task(load())
            await asyncio.sleep(3)  # the sidecar's first polls see pg-boss absent, then appear
            await run_scenario(pgboss_installs["v12"], "v12", migrated_db)
            await run_scenario(pgboss_installs["v12"], "v12", migrated_db, "throughput")

            async def scraped() -> bool:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    body = await http_json(
                        f"{prom_url}/api/v1/query", {"query": 'up{job="jobsight"}'}
                    )
                    return [r["value"][1] for r in body["data"]["result"]] == ["1"]
                return False

            await eventually(scraped, 60, interval=0.5)
            problems: list[str] = []

            async def every_panel_answers() -> bool:
                """Rates need a few samples: asked again until every panel has data."""
                problems[:] = await panel_problems(prom_url)
                return not problems

            with contextlib.suppress(AssertionError):
                await eventually(every_panel_answers, 60, interval=2.0)
            assert problems == []

            rules = await http_json(f"{prom_url}/api/v1/rules")
            loaded = [r for g in rules["data"]["groups"] for r in g["rules"]]
            assert len(loaded) == sum(
                len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"]
            )
            assert [r["name"] for r in loaded if r["health"] != "ok"] == []
            for rule in loaded:
                body = await http_json(f"{prom_url}/api/v1/query", {"query": rule["query"]})
                assert body["status"] == "success", (rule["name"], body)

            # Failures instead of successes: the error-rate trigger rolls back, and stays there
            # for longer than the alert's `for`, so the alert reaches the webhook.
            stop_load.set()
            await producer

            async def fail() -> None:
                while True:
                    await pgqueue.schedule_job("asset_import", {}, tenant=TENANT)
                    await asyncio.sleep(0.1)

            failing = asyncio.create_task(fail())

            def rollback_alert() -> list[dict]:
                return [
                    a
                    for a in received
                    if a["labels"].get("alertname") == "JobsightErrorRateRollback"
                    and a["status"] == "firing"
                ]

            async def delivered() -> bool:
                return bool(rollback_alert())

            try:
                await eventually(delivered, 180, interval=1.0)
            finally:
                failing.cancel()
            (alert,) = rollback_alert()[:1]
            assert alert["labels"]["severity"] == "critical"
            assert alert["labels"]["trigger"] == "error_rate"
            assert alert["annotations"]["runbook_url"].endswith("#jobsighterrorraterollback")
    finally:
        stop_load.set()
        stop.set()
        await temporal.stop()
        await pgqueue.stop(grace=1)
        await asyncio.wait_for(sidecar, 20)
        await hook_runner.cleanup()
