"""Readers only read: the poller evaluates and stores the verdicts; no request, scrape or page
moves a held trigger state, however many arrive at once."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from jobsight.health.state import State
from jobsight.health.verdict import Evaluator
from jobsight.sidecar.collector import SidecarCollector, registry_for
from jobsight.sidecar.poller import SidecarState
from jobsight.sidecar.server import build_app
from jobsight.sources import load_source
from tests.support.canned import BASE, NOW, views, window_row

READS = (
    "/verdict",
    "/verdict?version=1.0",
    "/verdict?version=9.9",
    "/metrics",
    "/",
    "/?version=1.0",
    "/gate",
    "/rollback",
    "/readyz?verbose",
)


async def test_many_concurrent_readers_change_no_trigger_since(aiohttp_client: Any) -> None:
    settings = replace(
        BASE,
        readiness_fail_on="degraded",  # readiness reads the verdict too
        triggers={k: replace(c, hold=30.0) for k, c in BASE.triggers.items()},
    )
    calm = views([window_row("a", 100, 0), window_row("a", 100, 0, version="1.0")])
    failing = views([window_row("a", 100, 60), window_row("a", 100, 60, version="1.0")])
    state = SidecarState(views=calm, leader=True)
    evaluator = Evaluator(settings)
    state.verdicts = evaluator.evaluate(state.views, NOW - 100, leader=True)
    # The data turns bad; until the poller evaluates again, every reader serves what it stored.
    state.views = failing
    state.touch()
    stored = copy.deepcopy(state.verdicts)
    held = copy.deepcopy(evaluator._held)
    sources = {name: load_source(name) for name in state.views}
    collector = SidecarCollector(state, sources, "test")
    client: TestClient[Any, Any] = await aiohttp_client(
        build_app(state, registry_for(collector), settings)
    )

    async def read(path: str) -> int:
        response = await client.get(path)
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(read(path) for path in READS * 30))
    assert set(statuses) <= {200, 412}
    assert state.verdicts == stored  # every trigger's state and since, as the poller left them
    assert evaluator._held == held
    body = await (await client.get("/verdict")).json()
    assert body["verdict"] == State.OK
    assert {t["since"] for t in body["triggers"]} == {NOW - 100}
    # The next evaluation (the poller's) is what moves them: held for 30 s, then rollback.
    assert evaluator.evaluate(state.views, NOW)[None].verdict == State.OK
    assert evaluator.evaluate(state.views, NOW + 31)[None].verdict == State.ROLLBACK
