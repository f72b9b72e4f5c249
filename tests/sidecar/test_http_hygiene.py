"""HTTP hygiene of the sidecar's server: a hostile body is a 400, not a 500; a request's text
cannot forge a log line; every response carries the browser protections and names no software
version (issue 17)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobsight.sidecar.collector import SidecarCollector, registry_for
from jobsight.sidecar.poller import SidecarState
from jobsight.sidecar.server import SECURITY_HEADERS, build_app
from jobsight.sources import load_source
from tests.support.canned import BASE, views, window_row


@pytest.fixture
async def client(aiohttp_client: Any) -> TestClient[Any, Any]:
    state = SidecarState(views=views([window_row("a", 100, 0)]), leader=True)
    sources = {name: load_source(name) for name in state.views}
    collector = SidecarCollector(state, sources, "test")
    made: TestClient[Any, Any] = await aiohttp_client(
        build_app(state, registry_for(collector), BASE)
    )
    return made


async def test_deeply_nested_json_is_a_400(client: TestClient[Any, Any]) -> None:
    for path in ("/gate", "/rollback"):
        response = await client.post(path, data=b"[" * 100_000 + b"]" * 100_000)
        assert response.status == 400, path
        assert "nested too deeply" in await response.text()
    broken = await client.post("/gate", data=b'{"name": ')
    assert broken.status == 400


async def test_a_newline_in_a_flagger_payload_cannot_forge_a_log_line(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    forged = "app\n2026-01-01 00:00:00 ERROR jobsight: verdict rollback"
    with caplog.at_level(logging.INFO, logger="jobsight.sidecar.server"):
        response = await client.post(
            "/gate", json={"name": forged, "namespace": "x" * 10_000, "phase": "\x1b[31mred"}
        )
    assert response.status in (200, 412)
    (record,) = [r for r in caplog.records if "webhook from Flagger" in r.getMessage()]
    line = record.getMessage()
    assert "\n" not in line and "\x1b" not in line and "app\\n2026" in line
    assert len(line) < 1_000  # a long field is cut


@pytest.mark.parametrize("path", ["/", "/metrics", "/verdict", "/livez", "/no-such-page"])
async def test_every_response_carries_the_protections(
    client: TestClient[Any, Any], path: str
) -> None:
    response = await client.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    server = response.headers["Server"]
    assert "aiohttp" not in server and "Python" not in server
