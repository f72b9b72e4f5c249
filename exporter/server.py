"""The sidecar's HTTP server (aiohttp): /metrics, /livez, /readyz and a small status page. The
handlers read the poller's state in memory; none of them queries a database."""

from __future__ import annotations

import html
import time

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from exporter.poller import SidecarState
from exporter.settings import SidecarSettings

STATE = web.AppKey("state", SidecarState)
RENDERED = web.AppKey("rendered", dict)  # (state version, content type) -> body
REGISTRY = web.AppKey("registry", CollectorRegistry)
SETTINGS = web.AppKey("settings", SidecarSettings)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text, or OpenMetrics (with exemplars) when the scraper asks for it. Rendered
    once per change of the state (a poll), then served from memory to every scraper."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    rendered = request.app[RENDERED]
    key = (request.app[STATE].version, content_type)
    body = rendered.get(key)
    if body is None:
        body = encoder(request.app[REGISTRY])
        for old in [k for k in rendered if k[0] != key[0]]:
            del rendered[old]
        rendered[key] = body
    return web.Response(body=body, headers={"Content-Type": content_type})


async def livez(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def readiness_checks(state: SidecarState) -> dict[str, str | None]:
    """check name -> None when passing, else the reason."""
    checks: dict[str, str | None] = {"config": None}
    if state.leader:
        checks["first-poll"] = None if state.first_poll_done else "no poll has finished yet"
        checks["database"] = None
    else:
        read = state.state_read
        checks["first-poll"] = None if read.last_success else "the leader's state not read yet"
        checks["database"] = None if read.up else (read.error or "not reached yet")
    return checks


async def readyz(request: web.Request) -> web.Response:
    checks = readiness_checks(request.app[STATE])
    failed = {name: reason for name, reason in checks.items() if reason}
    lines = [f"[-]{n} failed: {r}" if r else f"[+]{n} ok" for n, r in checks.items()]
    status = 503 if failed else 200
    if "verbose" in request.query:
        lines.append("readyz check failed" if failed else "readyz check passed")
        return web.Response(status=status, text="\n".join(lines) + "\n")
    return web.Response(status=status, text="ok\n" if not failed else "readyz check failed\n")


async def index(request: web.Request) -> web.Response:
    state = request.app[STATE]
    settings = request.app[SETTINGS]
    now = time.time()
    rows = []
    for name, view in sorted(state.views.items()):
        status = view.status
        up = "up" if status and status.up else "down"
        age = f"{now - status.last_success:.0f}s ago" if status and status.last_success else "never"
        error = html.escape(status.error or "") if status else "not polled yet"
        rows.append(
            f"<tr><td>{name}</td><td class={up}>{up}</td><td>{age}</td><td>{error}</td></tr>"
        )
    role = "leader" if state.leader else "follower"
    temporal = (
        f' · <a href="{html.escape(settings.temporal_ui_url)}">Temporal UI</a>'
        if settings.temporal_ui_url
        else ""
    )
    page = f"""<!doctype html><html><head><meta charset=utf-8><title>jobsight</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em 1em;text-align:left}}
.up{{color:#070}}.down{{color:#b00;font-weight:bold}}</style></head><body>
<h1>jobsight sidecar</h1><p>{role} of group <b>{html.escape(settings.instance)}</b>
 · <a href="/metrics">/metrics</a>{temporal}</p>
<table><tr><th>source</th><th>state</th><th>last success</th><th>last error</th></tr>
{"".join(rows)}</table></body></html>"""
    return web.Response(text=page, content_type="text/html")


def build_app(
    state: SidecarState, registry: CollectorRegistry, settings: SidecarSettings
) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app[REGISTRY] = registry
    app[SETTINGS] = settings
    app[RENDERED] = {}
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app
