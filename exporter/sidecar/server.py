"""The sidecar's HTTP server (aiohttp). Every handler reads the poller's state in memory, verdicts
included (the poller evaluates them); none of them changes a held state, and only the console's
pages query a database (through a pool of their own, console/routes.py).

    /metrics          Prometheus text, or OpenMetrics with exemplars
    /livez            the process and its event loop answer
    /readyz[/<check>] this sidecar can answer (Kubernetes' format: ?verbose, ?exclude=)
    /verdict          the verdict and every trigger, JSON, always 200 (?version= for a canary)
    /gate             deployment gate (Flagger webhooks): <= 202 passes, 412 halts
    /rollback         Flagger's rollback hook: 200 means "roll back", 412 means "do not"
    /scaler           the work waiting and running per queue, for KEDA (sidecar/scaler.py)
    /                 the status page (with the console: the job names' last hour)
    /queues, /failures, /schedules, /jobs   the operator console (console/routes.py)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from jobsight import codec
from jobsight.console import routes as console_routes
from jobsight.health.canary import (
    ANSWER_STATES,
    CanaryAnalysis,
    analysis_body,
    analysis_of,
    policy_of,
)
from jobsight.health.state import State
from jobsight.health.verdict import Verdict
from jobsight.settings import SidecarSettings
from jobsight.sidecar import pages as status_page
from jobsight.sidecar import scaler
from jobsight.sidecar.poller import SidecarState
from jobsight.sidecar.webconfig import BasicAuth, WebConfig, auth_middleware
from jobsight.sources.status import Condition, condition

log = logging.getLogger(__name__)
STATE = web.AppKey("state", SidecarState)
# (state version, verdict key, content type) -> body
RENDERED = web.AppKey("rendered", dict[tuple[Any, ...], bytes])
# The latest stored verdict and its JSON: /verdict serves the bytes until the verdict changes.
VERDICT_JSON = web.AppKey("verdict_json", list[tuple[Verdict, bytes]])
REGISTRY = web.AppKey("registry", CollectorRegistry)
MAX_VERSION_LENGTH = 128
MAX_LOGGED_FIELD = 200
# Sent with every response. The pages have inline styles and GET forms to themselves, nothing
# else: no script, no frame, no outside resource. Server names no software or version.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Server": "jobsight",
}


def loggable(value: Any) -> str:
    """A value from a request, safe in a log line: control characters (a newline that would
    forge a line) escaped, and at most MAX_LOGGED_FIELD characters."""
    text = str(value)[:MAX_LOGGED_FIELD]
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def current_verdict(request: web.Request, version: str | None = None) -> Verdict:
    return request.app[STATE].verdict(request.app[STATE].settings, version)


def requested_version(
    request: web.Request, payload: dict[str, Any] | None = None, key: str = "version"
) -> str | None:
    """A version from the query, or from a Flagger payload's metadata (`version`, `baseline`)."""
    version = request.query.get(key)
    if version is None and payload:
        metadata = payload.get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("versions") == "flagger":
            # Flagger's canary runs as <name>, its primary as <name>-primary (their pods' app
            # label, which the workers record as their version): see the Flagger example.
            name = payload.get("name")
            if isinstance(name, str) and name:
                return name if key == "version" else f"{name}-primary"
        version = metadata.get(key) if isinstance(metadata, dict) else None
    if version is not None and (not isinstance(version, str) or len(version) > MAX_VERSION_LENGTH):
        raise web.HTTPBadRequest(text=f"{key}: must be a string of at most 128 characters\n")
    return version or None


def judged(
    request: web.Request, payload: dict[str, Any] | None = None
) -> tuple[Verdict, CanaryAnalysis | None]:
    """The verdict asked for; with a version and a baseline (a name, or `auto`), the canary
    analysis decides it: pass is ok, fail is rollback, not enough evidence is inconclusive."""
    version = requested_version(request, payload)
    baseline = requested_version(request, payload, "baseline")
    verdict = current_verdict(request, version)
    if version is None or baseline is None:
        return verdict, None
    settings = request.app[STATE].settings
    analysis = analysis_of(request.app[STATE].views, version, baseline, policy_of(settings))
    return replace(verdict, verdict=ANSWER_STATES[analysis.answer]), analysis


async def metrics(request: web.Request) -> web.Response:
    """Rendered once per change of the state or of the verdict, then served from memory."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    verdict = current_verdict(request)
    verdict_key = tuple((t.name, t.state, t.value) for t in verdict.triggers)
    rendered = request.app[RENDERED]
    key = (request.app[STATE].version, verdict_key, content_type)
    body = rendered.get(key)
    if body is None:
        body = encoder(request.app[REGISTRY])
        rendered.clear()
        rendered[key] = body
    return web.Response(body=body, headers={"Content-Type": content_type})


async def livez(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def readiness_checks(
    state: SidecarState, settings: SidecarSettings, verdict: Verdict | None
) -> dict[str, str | None]:
    """check name -> None when passing, else the reason."""
    checks: dict[str, str | None] = {"config": None}
    if state.leader:
        checks["first-poll"] = None if state.first_poll_done else "no poll has finished yet"
        checks["database"] = None
    else:
        read = state.state_read
        checks["first-poll"] = None if read.last_success else "the leader's state not read yet"
        checks["database"] = None if read.up else (read.error or "not reached yet")
    if settings.readiness_fail_on != "never" and verdict is not None:
        limit = State(settings.readiness_fail_on).severity
        judged = verdict.verdict in (State.ROLLBACK, State.DEGRADED)
        failing = judged and verdict.verdict.severity >= limit
        checks["verdict"] = f"verdict is {verdict.verdict}" if failing else None
    return checks


def source_notes(state: SidecarState, settings: SidecarSettings) -> list[str]:
    """Sources that are not up, for `?verbose`: shown, never failing (readiness is about this
    sidecar answering; a source's trouble shows in the verdict and the metrics)."""
    now = time.time()
    notes = []
    for name, view in sorted(state.views.items()):
        found = condition(view, settings.interval(name), now)
        if found != Condition.UP:
            error = f": {view.status.error}" if view.status and view.status.error else ""
            notes.append(f"[+]source-{name} {found}{error}")
    return notes


async def readyz(request: web.Request) -> web.Response:
    settings = request.app[STATE].settings
    verdict = current_verdict(request) if settings.readiness_fail_on != "never" else None
    checks = readiness_checks(request.app[STATE], settings, verdict)
    only = request.match_info.get("check")
    if only is not None:
        if only not in checks:
            raise web.HTTPNotFound(text=f"no readiness check named {only!r}\n")
        checks = {only: checks[only]}
    for excluded in request.query.getall("exclude", []):
        checks.pop(excluded, None)
    failed = any(reason for reason in checks.values())
    status = 503 if failed else 200
    if "verbose" in request.query:
        lines = [f"[-]{n} failed: {r}" if r else f"[+]{n} ok" for n, r in checks.items()]
        lines += source_notes(request.app[STATE], settings)
        lines.append("readyz check failed" if failed else "readyz check passed")
        return web.Response(status=status, text="\n".join(lines) + "\n")
    if only is not None:
        reason = checks[only]
        return web.Response(status=status, text=f"{reason}\n" if reason else "ok\n")
    return web.Response(status=status, text="readyz check failed\n" if failed else "ok\n")


def verdict_body(verdict: Verdict) -> dict[str, Any]:
    body: dict[str, Any] = codec.to_jsonable(verdict)
    return body


async def verdict_handler(request: web.Request) -> web.Response:
    """Always 200: Argo Rollouts' web provider treats a non-2xx answer as an error, not a
    failed measurement; the verdict is in the body (and the canary analysis, when asked)."""
    verdict, analysis = judged(request)
    if analysis is not None:
        body = verdict_body(verdict)
        body["analysis"] = analysis_body(analysis)
        return web.json_response(body)
    cached = request.app[VERDICT_JSON]
    if not cached or cached[0][0] is not verdict:  # the poller stored a new one
        cached[:] = [(verdict, json.dumps(verdict_body(verdict)).encode())]
    return web.Response(body=cached[0][1], content_type="application/json")


async def _flagger_payload(request: web.Request) -> dict[str, Any] | None:
    """Flagger POSTs {name, namespace, phase, checksum, metadata}; GET has no body."""
    if request.method != "POST" or not request.can_read_body:
        return None
    try:
        async with asyncio.timeout(request.app[STATE].settings.request_timeout):
            body = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="body: not sent in time\n") from None
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise web.HTTPBadRequest(text="body: not JSON\n") from None
    except RecursionError:
        raise web.HTTPBadRequest(text="body: JSON nested too deeply\n") from None
    if payload is not None and not isinstance(payload, dict):
        raise web.HTTPBadRequest(text="body: must be a JSON object\n")
    if payload:
        log.info(
            "webhook from Flagger: %s/%s phase %s",
            loggable(payload.get("namespace")),
            loggable(payload.get("name")),
            loggable(payload.get("phase")),
        )
    return payload


async def gate(request: web.Request) -> web.Response:
    payload = await _flagger_payload(request)
    verdict, analysis = judged(request, payload)
    halt = verdict.verdict in request.app[STATE].settings.gate_halt_on
    body: dict[str, Any] = {
        "verdict": verdict.verdict,
        "halt": halt,
        "version": verdict.version,
        "triggers": {t.name: t.state for t in verdict.triggers},
    }
    if analysis is not None:
        body["analysis"] = analysis_body(analysis)
    return web.json_response(body, status=412 if halt else 200)


async def rollback(request: web.Request) -> web.Response:
    payload = await _flagger_payload(request)
    verdict, analysis = judged(request, payload)
    roll_back = verdict.verdict == State.ROLLBACK
    body: dict[str, Any] = {
        "verdict": verdict.verdict,
        "rollback": roll_back,
        "version": verdict.version,
    }
    if analysis is not None:
        body["analysis"] = analysis_body(analysis)
    return web.json_response(body, status=200 if roll_back else 412)


async def scaler_handler(request: web.Request) -> web.Response:
    state = request.app[STATE]
    status, body = scaler.answer(state.views, state.settings, request.query)
    return web.json_response(body, status=status)


async def index(request: web.Request) -> web.Response:
    verdict, analysis = judged(request)
    hours, hours_error = None, ""
    if console_routes.POOL in request.app:
        hours, hours_error = await console_routes.job_name_hours(request.app)
    page = status_page.render(
        verdict,
        request.app[STATE],
        request.app[STATE].settings,
        time.time(),
        analysis,
        hours,
        hours_error,
    )
    return web.Response(text=page, content_type="text/html")


def build_app(
    state: SidecarState,
    registry: CollectorRegistry,
    settings: SidecarSettings,
    web_config: WebConfig | None = None,
    console_pool: asyncpg.Pool | None = None,
    actions: console_routes.ActionsSetup | None = None,
) -> web.Application:
    """The sidecar's routes; with a web configuration, its users guard every path but the
    probes, and its headers join every response. With a console pool, the console's pages."""
    web_config = web_config or WebConfig()
    middlewares = [auth_middleware(BasicAuth(web_config.users))] if web_config.users else []
    app = web.Application(middlewares=middlewares)
    app.on_response_prepare.append(add_security_headers)
    if web_config.headers:
        extra = dict(web_config.headers)

        async def add_configured_headers(_: web.Request, response: web.StreamResponse) -> None:
            response.headers.update(extra)

        app.on_response_prepare.append(add_configured_headers)
    app[STATE] = state
    app[REGISTRY] = registry
    state.settings = settings  # handlers read state.settings: what a reload puts in force
    app[RENDERED] = {}
    app[VERDICT_JSON] = []
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/readyz/{check}", readyz)
    app.router.add_get("/verdict", verdict_handler)
    for path, handler in (("/gate", gate), ("/rollback", rollback)):
        app.router.add_get(path, handler)
        app.router.add_post(path, handler)
    app.router.add_get("/scaler", scaler_handler)
    app.router.add_get("/", index)
    if console_pool is not None:
        console_routes.add_console(app, state, settings, console_pool, actions)
    return app
