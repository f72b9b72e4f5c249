"""Autoscaling with KEDA (issue 20): the chart's ScaledObject example validates against the schemas
generated from KEDA's own CRDs (@kubernetes-models/keda), and /scaler answers with the real
backlogs of each engine (pgqueue jobs no worker takes, a real pg-boss 12 schema written by Node,
Temporal workflows on a task queue nobody polls), behind the sidecar's users as KEDA's
`authMode: basic` reaches it; a source that is down is a 503, never a 0."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import bcrypt
import pytest
import yaml

from jobsight.runners import HandlerRegistry
from jobsight.runners.pgqueue import PgQueueJobRunner
from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings
from tests.support.paths import ROOT
from tests.support.pgboss import run_scenario
from tests.support.sidecar import SidecarProcess
from tests.support.tools import require_tool
from tests.support.waiting import eventually

EXAMPLE = ROOT / "helm" / "jobsight" / "examples" / "keda-scaledobject.yaml"
CHECK = ROOT / "tests" / "keda"
TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000c3")
USER, PASSWORD = "keda", "keda-Pa55"


def validate(objects: list[dict]) -> subprocess.CompletedProcess[str]:
    require_tool(shutil.which("npm") is not None, "npm (Node.js)")
    if not (CHECK / "node_modules" / "@kubernetes-models" / "keda").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=CHECK,
                       check=True, timeout=300)  # fmt: skip
    return subprocess.run(
        ["node", str(CHECK / "validate.mjs")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_example_validates_against_kedas_schema() -> None:
    objects = list(yaml.safe_load_all(EXAMPLE.read_text()))
    done = validate(objects)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [json.loads(line)["kind"] for line in done.stdout.splitlines()] == [
        "TriggerAuthentication", "ScaledObject"]  # fmt: skip
    broken = json.loads(json.dumps(objects))
    broken[1]["spec"]["triggers"][0]["metadata"] = "url=http://x"  # the check can fail
    assert validate(broken).returncode == 1


def example_trigger() -> dict:
    scaled = next(o for o in yaml.safe_load_all(EXAMPLE.read_text()) if o["kind"] == "ScaledObject")
    return scaled["spec"]["triggers"][0]["metadata"]


async def scaler(client: aiohttp.ClientSession, base: str, query: str) -> tuple[int, dict]:
    async with client.get(f"{base}/scaler?{query}") as response:
        return response.status, await response.json()


async def test_scaler_reads_every_engines_backlog(
    migrated_db: str,
    temporal_address: str,
    pgboss_installs: dict[str, str],
    tmp_path: Path,
) -> None:
    # pgqueue: seven invoices nobody works.
    registry = HandlerRegistry()
    registry.handler("generate-invoice")(lambda ctx, data: None)
    producer = PgQueueJobRunner(migrated_db, registry, work=False)
    for n in range(7):
        await producer.schedule_job("generate-invoice", {"n": n}, tenant=TENANT)
    await producer.close()
    # Temporal: three workflows on a task queue no worker polls.
    task_queue = f"keda-{uuid.uuid4().hex[:8]}"
    temporal_registry = HandlerRegistry()
    temporal_registry.handler("import")(lambda ctx, data: None)
    temporal = TemporalJobRunner(
        migrated_db, temporal_registry,
        TemporalSettings(address=temporal_address, task_queue=task_queue), work=False,
    )  # fmt: skip
    for _ in range(3):
        await temporal.schedule_job("import", {}, tenant=TENANT)
    await temporal.close()
    # pg-boss 12, written by Node: its own count of each queue's ready jobs.
    await run_scenario(pgboss_installs["v12"], "v12", migrated_db)
    conn = await asyncpg.connect(migrated_db)
    try:
        boss_ready = await conn.fetchval(
            "SELECT count(*) FROM pgboss.job WHERE name = 'emails'"
            " AND state IN ('created', 'retry') AND start_after <= now()"
        )
    finally:
        await conn.close()

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {USER: hashed}}))
    sidecar = SidecarProcess(
        migrated_db, tmp_path,
        JOBSIGHT_SOURCES="jobs,pgqueue,pgboss,temporal",
        TEMPORAL_ADDRESS=temporal_address, JOBSIGHT_TEMPORAL_TASK_QUEUES=task_queue,
        JOBSIGHT_WEB_CONFIG_FILE=str(web),
    ).start()  # fmt: skip
    auth = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
    try:
        async with aiohttp.ClientSession(headers=auth, timeout=aiohttp.ClientTimeout(total=5)) as c:
            seen: list[dict] = [{}]

            async def counted() -> bool:  # every engine's source has polled
                try:
                    status, body = await scaler(c, sidecar.url, "")
                except (aiohttp.ClientError, OSError):
                    return False
                seen[0] = body
                queues = body.get("queues", {}) if status == 200 else {}
                return (
                    not body.get("unavailable")
                    and set(queues) == {"pgqueue", "pg-boss", "temporal"}
                    and queues["temporal"].get(task_queue, {}).get("total") == 3
                )

            try:
                await eventually(counted, 30, "every engine's backlog counted")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last answer {seen[0]}; log {sidecar.log()}") from None
            # The example's own trigger, pointed at this sidecar: KEDA reads valueLocation.
            trigger = example_trigger()
            url = urlsplit(trigger["url"])
            status, body = await scaler(c, sidecar.url, url.query)
            assert status == 200 and body[trigger["valueLocation"]] == 7
            assert (body["waiting"], body["running"], body["known"]) == (7, 0, True)
            status, body = await scaler(c, sidecar.url, "job_name=generate-invoice")
            assert (status, body["waiting"], body["total"]) == (200, 7, 7)
            status, body = await scaler(c, sidecar.url, "engine=pg-boss&queue=emails")
            assert status == 200 and body["waiting"] == boss_ready > 0, body
            status, body = await scaler(c, sidecar.url, "engine=pgqueue&queue=never-used")
            assert (status, body["total"], body["known"]) == (200, 0, False)
            status, everything = await scaler(c, sidecar.url, "")
            assert everything["queues"]["pgqueue"]["generate-invoice"]["total"] == 7
            assert everything["queues"]["temporal"][task_queue]["running"] is None
            assert everything["job_names"]["import"]["waiting"] == 3
            status, _ = await scaler(c, sidecar.url, "engine=sqs&queue=x")
            assert status == 400
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(f"{sidecar.url}/scaler") as r:
                assert r.status == 401  # KEDA needs the TriggerAuthentication
    finally:
        sidecar.stop()


@pytest.mark.parametrize("query", ["engine=pgqueue&queue=x", "job_name=x"])
async def test_a_source_that_is_down_is_a_503_not_a_zero(tmp_path: Path, query: str) -> None:
    sidecar = SidecarProcess(
        "postgresql://nobody@127.0.0.1:9/none", tmp_path, JOBSIGHT_SOURCES="jobs,pgqueue"
    ).start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as c:

            async def answered() -> bool:
                try:
                    status, _ = await scaler(c, sidecar.url, query)
                except (aiohttp.ClientError, OSError):
                    return False
                return status == 503

            await eventually(answered, 30, "a 503 from a sidecar without its database")
            status, body = await scaler(c, sidecar.url, query)
            assert status == 503 and "source is" in body["error"]
    finally:
        sidecar.stop()
