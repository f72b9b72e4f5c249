"""The health gateway against a real database: every trigger driven across its thresholds by
real job data, the verdict and its metrics, every endpoint's status codes and bodies, canary
scope, hold time, `unknown` for a down source, readiness, the Argo Rollouts and Flagger examples
evaluated on real answers, `jobsight verdict`, and the status page in headless Chromium."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import math
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import aiohttp
import asyncpg
import pytest
import yaml
from jsonpath_ng import parse as jsonpath
from prometheus_client.parser import text_string_to_metric_families

from jobsight.devstack.localstack import free_port
from jobsight.devstack.temporal import LocalTemporal
from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings
from jobsight.runners.pgqueue.maintenance import Maintainer
from jobsight.settings import load_settings
from jobsight.sidecar.app import serve
from tests.support.handlers.gateway import registry
from tests.support.paths import ROOT
from tests.support.pgqueue import reachable_for
from tests.support.processes import jobsight
from tests.support.tools import IN_CI, require_tool
from tests.support.waiting import eventually

EXAMPLES = ROOT / "helm" / "jobsight" / "examples"
ARTIFACTS = ROOT / "tests" / "artifacts"
TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000ee")
FAST = {"poll_interval": timedelta(milliseconds=100),
        "maintenance_interval": timedelta(milliseconds=100),
        "heartbeat_interval": timedelta(milliseconds=200),
        "heartbeat_timeout": timedelta(seconds=1)}  # fmt: skip
TIGHT = {
    "JOBSIGHT_HOST": "127.0.0.1",
    "JOBSIGHT_SOURCES": "jobs,pgqueue,postgres",
    "JOBSIGHT_POLL_INTERVAL": "300ms",
    "JOBSIGHT_COMMIT_LAG": "100ms",
    "JOBSIGHT_TRIGGER_HOLD": "0",
    "JOBSIGHT_ERROR_RATE_DEGRADED": "10%",
    "JOBSIGHT_ERROR_RATE_ROLLBACK": "30%",
    "JOBSIGHT_ERROR_RATE_MIN_SAMPLE": "5",
    "JOBSIGHT_ERROR_RATE_WINDOW": "1m",
    "JOBSIGHT_QUEUE_DEPTH_DEGRADED": "5",
    "JOBSIGHT_QUEUE_DEPTH_ROLLBACK": "20",
    "JOBSIGHT_WORKER_CRASHES_ROLLBACK": "2",
    "JOBSIGHT_DB_CONNECTIONS_DEGRADED": "30%",
    "JOBSIGHT_DB_CONNECTIONS_ROLLBACK": "50%",
    "JOBSIGHT_LATENCY_P95_DEGRADED": "200ms",
    "JOBSIGHT_LATENCY_P95_ROLLBACK": "5s",
    "JOBSIGHT_LATENCY_P95_MIN_SAMPLE": "3",
    "JOBSIGHT_LATENCY_P95_WINDOW": "1m",
    "JOBSIGHT_STUCK_AFTER": "1s",
    "JOBSIGHT_STALLED_DEGRADED": "1500ms",
    "JOBSIGHT_STALLED_WINDOW": "1500ms",
}


@asynccontextmanager
async def sidecar(url: str, **env: str) -> AsyncIterator[str]:
    port = free_port()
    settings = load_settings({"DATABASE_URL": url, **TIGHT, "JOBSIGHT_PORT": str(port), **env})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, handle_signals=False))
    base = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: _answers(base), 15)
        yield base
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def _answers(base: str) -> bool:
    try:
        status, _ = await get(base, "/readyz")
        return status == 200
    except aiohttp.ClientError:
        return False


async def get(base: str, path: str, method: str = "GET", payload: object = None) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.request(method, base + path, json=payload) as response:
            return response.status, await response.text()


async def verdict(base: str, version: str | None = None) -> dict:
    status, body = await get(base, "/verdict" + (f"?version={version}" if version else ""))
    assert status == 200
    return json.loads(body)


async def trigger_state(base: str, name: str, version: str | None = None) -> str:
    body = await verdict(base, version)
    return next(t["state"] for t in body["triggers"] if t["name"] == name)


async def until_state(
    base: str, name: str, state: str, version: str | None = None, within: float = 15
) -> None:
    async def check() -> bool:
        return await trigger_state(base, name, version) == state

    await eventually(check, within, interval=0.1)


async def run_jobs(url: str, name: str, count: int, version: str) -> None:
    runner = PgQueueJobRunner(url, registry(), PgQueueSettings(**FAST, worker_version=version))
    done = "SELECT count(*) FROM jobs WHERE type = $1 AND finished_at IS NOT NULL"
    before = await (await runner.pool()).fetchval(done, name)
    for _ in range(count):
        await runner.schedule_job(name, {}, tenant=TENANT)
    await runner.start()
    try:
        await eventually(lambda: _at_least(runner, done, name, before + count), 20)
    finally:
        await runner.stop(grace=1)


async def _at_least(runner: PgQueueJobRunner, query: str, name: str, count: int) -> bool:
    return await (await runner.pool()).fetchval(query, name) >= count


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


async def test_every_trigger_across_its_thresholds(migrated_db: str):
    async with sidecar(migrated_db) as base:
        await run_jobs(migrated_db, "generate-invoice", 10, "1.0")
        await until_state(base, "error_rate", "ok")
        body = await verdict(base)
        assert body["verdict"] == "ok", body
        assert (await get(base, "/gate"))[0] == 200
        assert (await get(base, "/rollback"))[0] == 412

        # Failures on a canary version: the error rate rolls back, globally and for 2.0 only.
        await run_jobs(migrated_db, "asset_import", 10, "2.0")
        await until_state(base, "error_rate", "rollback")
        assert await trigger_state(base, "error_rate", "1.0") == "ok"
        assert await trigger_state(base, "error_rate", "2.0") == "rollback"
        status, text = await get(base, "/gate?version=2.0")
        assert status == 412 and json.loads(text)["halt"] is True
        assert (await get(base, "/gate?version=1.0"))[0] == 200
        assert (
            await get(
                base,
                "/rollback",
                "POST",
                {
                    "name": "billing",
                    "namespace": "d",
                    "phase": "Progressing",
                    "checksum": "x",
                    "metadata": {"version": "2.0"},
                },
            )
        )[0] == 200
        assert (await get(base, "/readyz"))[0] == 200  # a rollback verdict is not unreadiness
        status, text = await get(base, "/metrics")
        assert metric(text, "jobsight_verdict", verdict="rollback") == 1
        assert metric(text, "jobsight_trigger_state", trigger="error_rate", state="rollback") == 1
        assert metric(text, "jobsight_trigger_value", trigger="error_rate") == 0.5
        assert (
            metric(text, "jobsight_trigger_threshold", trigger="error_rate", level="rollback")
            == 0.3
        )

        # Slow jobs: p95 latency above 200 ms.
        await run_jobs(migrated_db, "invoice_zip", 4, "1.0")
        await until_state(base, "latency_p95", "degraded")
        latency = next(t for t in (await verdict(base))["triggers"] if t["name"] == "latency_p95")
        assert latency["value"] >= 0.6 and latency["detail"] == "worst: invoice_zip"

        # A stuck job: active for longer than a second.
        hanging = PgQueueJobRunner(migrated_db, registry(), PgQueueSettings(**FAST))
        await hanging.schedule_job("credit-reconciliation", {}, tenant=TENANT)
        await hanging.start()
        try:
            await until_state(base, "stuck_jobs", "degraded")
        finally:
            await hanging.stop(grace=0.1)

        # Backlog nobody works: queue depth, then stalled (no completion for 1.5 s).
        idle = PgQueueJobRunner(migrated_db, registry(), PgQueueSettings(**FAST))
        for _ in range(8):
            await idle.schedule_job("generate-invoice", {}, tenant=TENANT)
        await until_state(base, "queue_depth", "degraded")
        for _ in range(15):
            await idle.schedule_job("generate-invoice", {}, tenant=TENANT)
        await until_state(base, "queue_depth", "rollback")
        await until_state(base, "stalled", "degraded")
        await idle.stop()

        # Crashed workers, as the maintainer records them.
        conn = await asyncpg.connect(migrated_db)
        try:
            for _ in range(3):
                await conn.execute(
                    "INSERT INTO pgqueue.worker (id, host, pid, heartbeat_at)"
                    " VALUES ($1, 'gone', 1, now() - interval '1 hour')",
                    uuid.uuid4(),
                )
            await reachable_for(conn, timedelta(minutes=5))  # not an outage: crashes
            keeper = PgQueueJobRunner(migrated_db, registry(), PgQueueSettings(**FAST))
            report = await Maintainer(await keeper.pool(), registry(), keeper.settings).run_once()
            await keeper.stop()
            assert report is not None and report.crashed_workers == 3
            await until_state(base, "worker_crashes", "rollback")

            # Connections in use against the available slots.
            available = await conn.fetchval(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
            )
            used = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            )
            extra = [
                await asyncpg.connect(migrated_db)
                for _ in range(max(0, math.ceil(0.51 * available) - used + 2))
            ]
            try:
                await until_state(base, "db_connections", "rollback")
            finally:
                for c in extra:
                    await c.close()
            await until_state(base, "db_connections", "ok")
        finally:
            await conn.close()
        body = await verdict(base)
        assert body["verdict"] == "rollback" and body["leader"] is True
        assert {s: v["up"] for s, v in body["sources"].items()} == {
            "jobs": True,
            "pgqueue": True,
            "postgres": True,
        }


async def test_hold_time_and_configured_readiness(migrated_db: str):
    async with sidecar(
        migrated_db, JOBSIGHT_ERROR_RATE_HOLD="2s", JOBSIGHT_READINESS_FAIL_ON="rollback"
    ) as base:
        await until_state(base, "error_rate", "ok")  # from unknown (not polled yet), held too
        await run_jobs(migrated_db, "asset_import", 10, "2.0")
        loop = asyncio.get_running_loop()

        async def measured() -> bool:
            rate = next(t for t in (await verdict(base))["triggers"] if t["name"] == "error_rate")
            return rate["value"] == 1.0

        await eventually(measured, 10, interval=0.05)
        seen = loop.time()
        assert await trigger_state(base, "error_rate") == "ok"  # held
        await until_state(base, "error_rate", "rollback")
        assert loop.time() - seen >= 1.5
        status, text = await get(base, "/readyz?verbose")
        assert status == 503 and "[-]verdict failed: verdict is rollback" in text
        assert (await get(base, "/readyz?exclude=verdict"))[0] == 200
        assert (await get(base, "/readyz/database"))[0] == 200
        assert (await get(base, "/readyz/verdict"))[0] == 503
        assert (await get(base, "/readyz/nope"))[0] == 404
        assert (await get(base, "/livez")) == (200, "ok\n")


async def test_a_canary_gate_fails_closed_without_evidence(migrated_db: str):
    """Through a real sidecar: a mistyped version is unknown and an idle canary (3 finished
    jobs, 5 needed) inconclusive; the gate halts on both and opens once the sample is there."""
    async with sidecar(migrated_db) as base:
        await run_jobs(migrated_db, "generate-invoice", 10, "1.0")
        await until_state(base, "error_rate", "ok")
        status, text = await get(base, "/gate?version=1.0-typo")
        assert status == 412 and json.loads(text)["verdict"] == "unknown"
        await run_jobs(migrated_db, "generate-invoice", 3, "1.1")
        await until_state(base, "error_rate", "inconclusive", version="1.1")
        status, text = await get(base, "/gate?version=1.1")
        assert status == 412 and json.loads(text)["verdict"] == "inconclusive"
        assert (await get(base, "/rollback?version=1.1"))[0] == 412  # nor a reason to roll back
        await run_jobs(migrated_db, "generate-invoice", 3, "1.1")
        await until_state(base, "error_rate", "ok", version="1.1")
        assert (await get(base, "/gate?version=1.1"))[0] == 200


async def test_a_started_sidecar_opens_the_gate_as_soon_as_it_knows(migrated_db: str):
    """A sidecar (re)started in the middle of a rollout, with the default 30 s hold: the gate
    opens once the first polls land, not a hold time later."""
    async with sidecar(migrated_db, JOBSIGHT_TRIGGER_HOLD="30s") as base:
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def gate_open() -> bool:
            return (await get(base, "/gate"))[0] == 200

        await eventually(gate_open, 15, interval=0.1)
        assert loop.time() - began < 10  # well inside the 30 s hold
        assert (await verdict(base))["verdict"] == "ok"


@asynccontextmanager
async def sidecar_with_own_temporal(
    url: str, poll_timeout: str
) -> AsyncIterator[tuple[str, LocalTemporal]]:
    """A sidecar watching the jobs table and a Temporal dev server of its own (to stop)."""
    server = LocalTemporal()
    address = server.start()
    try:
        async with sidecar(url, JOBSIGHT_SOURCES="jobs,temporal", TEMPORAL_ADDRESS=address,
                           JOBSIGHT_POLL_TIMEOUT=poll_timeout) as base:  # fmt: skip
            yield base, server
    finally:
        server.stop()


async def test_a_source_that_goes_down_serves_no_gauges(migrated_db: str):
    """The Temporal dev server stops under a running sidecar: its gauges leave /metrics (an
    outage shows no work that isn't there), jobsight_source_up and _condition say why, the
    counters of the jobs source keep their values, and the gauges come back with the server."""
    async with sidecar_with_own_temporal(migrated_db, "1s") as (base, server):
        await run_jobs(migrated_db, "generate-invoice", 3, "1.0")

        async def scraped(name: str, **labels: str) -> float | None:
            return metric((await get(base, "/metrics"))[1], name, **labels)

        async def temporal_served() -> bool:
            counted = await scraped("jobsight_jobs_completed_total")
            return (await scraped("jobsight_temporal_long_running_workflows")) is not None and (
                counted is not None and counted >= 3
            )

        await eventually(temporal_served, 15, interval=0.1)
        server.kill()

        async def temporal_gone() -> bool:  # (stale first, while a poll waits)
            return await scraped("jobsight_source_condition", source="temporal",
                                 condition="down") == 1  # fmt: skip

        await eventually(temporal_gone, 15, interval=0.1)
        text = (await get(base, "/metrics"))[1]
        assert metric(text, "jobsight_temporal_long_running_workflows") is None
        assert metric(text, "jobsight_source_up", source="temporal") == 0
        assert metric(text, "jobsight_jobs_completed_total") >= 3  # counters stay
        assert metric(text, "jobsight_source_up", source="jobs") == 1
        status, verbose = await get(base, "/readyz?verbose")
        assert status == 200 and "[+]source-temporal down: " in verbose
        server.restart()  # same address
        await eventually(temporal_served, 30, interval=0.2)


async def test_a_short_temporal_outage_shows_when_it_happens(migrated_db: str):
    """The dev server is away for 2 s under a sidecar whose poll timeout is 20 s: a poll fails
    at once (no retrying until the server is back), so the source reads down during the outage
    instead of up throughout."""
    async with sidecar_with_own_temporal(migrated_db, "20s") as (base, server):

        async def temporal(condition: str) -> bool:
            text = (await get(base, "/metrics"))[1]
            found = metric(text, "jobsight_source_condition", source="temporal",
                           condition=condition)  # fmt: skip
            return found == 1

        await eventually(lambda: temporal("up"), 15, interval=0.1)
        server.kill()
        await eventually(lambda: temporal("down"), 1.8, "down during the outage", interval=0.05)
        server.restart()
        await eventually(lambda: temporal("up"), 30, interval=0.2)


async def test_an_unsupported_pgboss_schema_halts_nothing(
    migrated_db: str, caplog: pytest.LogCaptureFixture
):
    """A pg-boss 9 schema in the database: the source is refused once (one log line), shown as
    unsupported, and the triggers are left to the sources that work: the gate passes."""
    conn = await asyncpg.connect(migrated_db)
    await conn.execute(
        "CREATE SCHEMA pgboss; CREATE TABLE pgboss.version (version int);"
        " INSERT INTO pgboss.version VALUES (20)"
    )
    await conn.close()
    with caplog.at_level(logging.WARNING):
        async with sidecar(migrated_db, JOBSIGHT_SOURCES="jobs,pgqueue,postgres,pgboss") as base:
            await run_jobs(migrated_db, "generate-invoice", 6, "1.0")
            await eventually(lambda: _verdict_is(base, "ok"), 15, interval=0.1)
            assert (await get(base, "/gate"))[0] == 200
            body = await verdict(base)
            assert body["sources"]["pgboss"]["up"] is False
            text = (await get(base, "/metrics"))[1]
            assert metric(text, "jobsight_source_condition", source="pgboss",
                          condition="unsupported") == 1  # fmt: skip
            status, verbose = await get(base, "/readyz?verbose")
            assert status == 200 and "[+]source-pgboss unsupported: PgBossError: " in verbose
            page = (await get(base, "/"))[1]
            assert 'data-condition="unsupported"' in page
            await asyncio.sleep(1)  # several polls
    refusals = [r for r in caplog.records if "source pgboss is unsupported" in r.getMessage()]
    assert len(refusals) == 1


async def test_a_down_source_makes_the_verdict_unknown(migrated_db: str):
    async with sidecar(
        migrated_db,
        JOBSIGHT_SOURCES="jobs,pgqueue,postgres,temporal",
        TEMPORAL_ADDRESS="127.0.0.1:1",
        JOBSIGHT_POLL_TIMEOUT="1s",
    ) as base:

        async def temporal_down() -> bool:  # every other source polled, Temporal refused
            body = await verdict(base)
            depth = next(t for t in body["triggers"] if t["name"] == "queue_depth")
            return depth["detail"].startswith("temporal: down") and body["sources"]["jobs"]["up"]

        await eventually(temporal_down, 15, interval=0.1)
        await eventually(lambda: _verdict_is(base, "unknown"), 15, interval=0.1)
        body = await verdict(base)
        depth = next(t for t in body["triggers"] if t["name"] == "queue_depth")
        assert depth["state"] == "unknown" and depth["detail"].startswith("temporal: down")
        assert body["sources"]["temporal"]["up"] is False
        assert (await get(base, "/gate"))[0] == 412  # unknown halts a rollout by default
        assert (await get(base, "/rollback"))[0] == 412  # ...but is no reason to roll back


async def _verdict_is(base: str, expected: str) -> bool:
    return (await verdict(base))["verdict"] == expected


def evaluate_condition(expression: str, result: object) -> bool:
    """Argo Rollouts conditions (expr): the subset the example uses, via Python's AST: names,
    string literals, ==, !=, ||, &&, parentheses. Anything else is refused."""
    source = expression.replace("||", " or ").replace("&&", " and ")
    tree = ast.parse(source, mode="eval")

    def ev(node: ast.AST) -> object:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BoolOp):
            values = [ev(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, right = ev(node.left), ev(node.comparators[0])
            if isinstance(node.ops[0], ast.Eq):
                return left == right
            if isinstance(node.ops[0], ast.NotEq):
                return left != right
        if isinstance(node, ast.Name) and node.id == "result":
            return result
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        raise ValueError(f"unsupported in the example condition: {ast.dump(node)}")

    return bool(ev(tree))


# $1 version, $2 jobs, $3 failed every n-th job (0: none): finished over the last 20 minutes
VERSION_JOBS = """
INSERT INTO jobs (tenant, type, status, user_id, runner_type, created_at, updated_at,
                  started_at, finished_at, attempts, worker_version, error)
SELECT '00000000-0000-4000-8000-000000000001', 'send-email',
       (CASE WHEN $3 > 0 AND g % $3 = 0 THEN 'failed' ELSE 'completed' END)::job_status,
       '00000000-0000-4000-8000-000000000001', 'pgqueue',
       t - interval '2 seconds', t, t - interval '1 second', t, 1, $1,
       CASE WHEN $3 > 0 AND g % $3 = 0 THEN 'TimeoutError: smtp' END
FROM generate_series(1, $2::int) AS g,
     LATERAL (SELECT now() - interval '5 seconds' - (g % 1200) * interval '1 second' AS t) AS x
"""


async def test_argo_and_flagger_examples_work_on_real_answers(migrated_db: str):
    analysis = yaml.safe_load((EXAMPLES / "argo-analysis-template.yaml").read_text())
    metric_spec = analysis["spec"]["metrics"][0]
    web_provider = metric_spec["provider"]["web"]
    canary = yaml.safe_load((EXAMPLES / "flagger-canary.yaml").read_text())
    hooks = {h["type"]: h for h in canary["spec"]["analysis"]["webhooks"]}
    docs = (ROOT / "docs" / "gates.md").read_text()
    assert (
        "baseline=" in docs
        and "versions: flagger" in (EXAMPLES / "flagger-canary.yaml").read_text()
    )
    conn = await asyncpg.connect(migrated_db)
    try:  # each canary beside its stable release, named as Flagger names them (<name>-primary)
        for canary_name, jobs, every in (("young", 12, 0), ("good", 600, 50), ("broken", 600, 4)):
            await conn.execute(VERSION_JOBS, f"{canary_name}-primary", 6000, 50)  # 2% failed
            await conn.execute(VERSION_JOBS, canary_name, jobs, every)
    finally:
        await conn.close()

    async with sidecar(migrated_db) as base:

        def url_for(template: str, version: str) -> str:
            """The template's URL with its args filled in, as Argo does (our sidecar's path)."""
            path = template.replace("{{args.jobsight-url}}", "")
            path = path.replace("{{args.baseline-version}}", f"{version}-primary")
            return path.replace("{{args.canary-version}}", version)

        async def argo_measurement(version: str) -> tuple[bool, bool]:
            status, text = await get(base, url_for(web_provider["url"], version))
            assert status == 200  # the web provider errors on anything else
            path = web_provider["jsonPath"].strip("{}")
            (result,) = [m.value for m in jsonpath(path).find(json.loads(text))]
            return (
                evaluate_condition(metric_spec["successCondition"], result),
                evaluate_condition(metric_spec["failureCondition"], result),
            )

        async def flagger(hook: dict, canary_name: str) -> int:
            payload = {
                "name": canary_name,  # the canary's name: its pods' app label, their version
                "namespace": canary["metadata"]["namespace"],
                "phase": "Progressing",
                "checksum": "abc123",
                "metadata": hook.get("metadata", {}),
            }
            return (await get(base, hook["url"].split("9465", 1)[1], "POST", payload))[0]

        async def judged() -> bool:
            return await argo_measurement("broken") == (False, True)

        await eventually(judged, 30, "the canary analysis answering")
        # Too few jobs yet, or a mistyped version: inconclusive, neither a pass nor a failure;
        # Flagger's gate halts (inconclusive is in JOBSIGHT_GATE_HALT_ON) and does not roll back.
        assert await argo_measurement("young") == (False, False)
        assert await argo_measurement("brokn") == (False, False)
        assert await flagger(hooks["rollout"], "young") > 202
        assert await flagger(hooks["rollback"], "young") > 202
        # As good as its baseline: passes, promotes, is not rolled back.
        assert await argo_measurement("good") == (True, False)
        assert await flagger(hooks["rollout"], "good") <= 202
        assert await flagger(hooks["confirm-promotion"], "good") <= 202
        assert await flagger(hooks["rollback"], "good") > 202
        # Worse than its baseline: fails, halts, is rolled back.
        assert await flagger(hooks["rollout"], "broken") > 202
        assert await flagger(hooks["confirm-promotion"], "broken") > 202
        assert 200 <= await flagger(hooks["rollback"], "broken") < 300
        assert (await get(base, "/gate", "POST", ["not", "an", "object"]))[0] == 400


def jobsight_verdict(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return jobsight("verdict", *args, env=env)


async def test_verdict_command_exit_codes(migrated_db: str):
    env = {k: v for k, v in TIGHT.items() if k != "JOBSIGHT_HOST"}
    env["DATABASE_URL"] = migrated_db
    ok = await asyncio.to_thread(jobsight_verdict, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("verdict: ok") and "error_rate" in ok.stdout
    await run_jobs(migrated_db, "asset_import", 10, "2.0")
    await run_jobs(migrated_db, "generate-invoice", 10, "1.0")
    bad = await asyncio.to_thread(jobsight_verdict, "--json", env=env)
    assert bad.returncode == 3 and json.loads(bad.stdout)["verdict"] == "rollback"
    async with sidecar(migrated_db) as base:
        await until_state(base, "error_rate", "ok", "1.0")
        canary_ok = await asyncio.to_thread(jobsight_verdict, "--url", base, "--version", "1.0")
        assert canary_ok.returncode == 0, canary_ok.stdout
        canary = await asyncio.to_thread(jobsight_verdict, "--url", base, "--version", "2.0")
        assert canary.returncode == 3 and "(version 2.0)" in canary.stdout
        await run_jobs(migrated_db, "generate-invoice", 2, "3.0")
        await until_state(base, "error_rate", "inconclusive", "3.0")
        idle = await asyncio.to_thread(jobsight_verdict, "--url", base, "--version", "3.0")
        assert idle.returncode == 5 and idle.stdout.startswith("verdict: inconclusive")
    gone = await asyncio.to_thread(jobsight_verdict, "--url", f"http://127.0.0.1:{free_port()}")
    assert gone.returncode == 4 and "cannot get a verdict" in gone.stdout
    bad_setting = await asyncio.to_thread(
        jobsight_verdict, env={**env, "JOBSIGHT_ERROR_RATE_DEGRADED": "lots"}
    )
    assert bad_setting.returncode == 2 and "JOBSIGHT_ERROR_RATE_DEGRADED" in bad_setting.stderr


async def test_status_page_in_headless_chromium(migrated_db: str):
    chromium = shutil.which("chromium")
    require_tool(chromium is not None, "Debian's chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        if IN_CI:
            raise
        pytest.skip("playwright is not installed")
    await run_jobs(migrated_db, "asset_import", 10, "2.0")
    async with sidecar(migrated_db) as base:
        await until_state(base, "error_rate", "rollback")
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=chromium,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(base + "/")
            banner = page.locator("#verdict")
            assert (await banner.inner_text()).strip() == "ROLLBACK"
            assert await banner.get_attribute("data-verdict") == "rollback"
            row = page.locator('tr.trigger[data-trigger="error_rate"]')
            assert await row.get_attribute("data-state") == "rollback"
            assert "100.0%" in await row.inner_text() and "30.0%" in await row.inner_text()
            assert await page.locator("#role").inner_text() == "leader"
            assert await page.locator('tr.source[data-up="1"]').count() == 3
            assert await page.locator('a[href="/metrics"]').count() == 1
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
            await browser.close()
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000
