"""The console's pages, served by the sidecar beside its status page:

    /queues                       every engine's queues side by side (from the sources' snapshots)
    /failures[?window=&group=]    failed attempts grouped by error fingerprint
    /schedules                    recurring jobs of pgqueue and Temporal
    /jobs[?filters&after=]        search, newest first, keyset-paginated
    /jobs/{tenant}/{job_id}       one job: its attempts, trace link, Temporal or queue row

They read the jobs tables on request through a pool of their own (read-only sessions, each query
cut at JOBSIGHT_CONSOLE_QUERY_TIMEOUT), so a heavy search never delays a poll. A database that
is down or slow makes a page say so, never an error page without a reason."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from aiohttp import web

from jobsight import dburl
from jobsight.console import model, queries
from jobsight.console.actions import Operator, Tokens
from jobsight.console.filters import (
    RELATIVE,
    STATUSES,
    Cursor,
    FilterError,
    link,
    parse_cursor,
    parse_filter,
)
from jobsight.console.templating import render
from jobsight.settings import SidecarSettings
from jobsight.sidecar.poller import SidecarState
from jobsight.sidecar.webconfig import USER
from jobsight.sources.temporal import TemporalSnapshot
from jobsight.sources.temporal_schedules import ScheduleState
from jobsight.sources.traces import scheduling_span

log = logging.getLogger(__name__)
POOL = web.AppKey("console_pool", asyncpg.Pool)
ACTIONS: web.AppKey[ActionsSetup] = web.AppKey("console_actions")
CONSOLE_SETTINGS = web.AppKey("console_settings", SidecarSettings)
CONSOLE_STATE = web.AppKey("console_state", SidecarState)
HOURS_CACHE = web.AppKey("console_hours", dict[str, Any])
FAILURES_CACHE = web.AppKey("console_failures", dict[Any, Any])
HOURS_TTL_S = 10.0  # the overview's hour and the failure groups are re-read at most this often
POOL_SIZE = 4
FAILURE_WINDOWS = {"1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}
T = TypeVar("T")


class PageError(Exception):
    """A page that cannot be shown as asked: its status and a sentence for the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def session_settings(settings: SidecarSettings) -> dict[str, str]:
    from jobsight.sidecar.app import server_settings

    return {
        **server_settings(settings),
        "application_name": "jobsight-console",
        "statement_timeout": str(int(settings.console_query_timeout * 1000)),
        "default_transaction_read_only": "on",
    }


async def open_pool(settings: SidecarSettings) -> asyncpg.Pool:
    """The console's own connections, opened lazily (min_size 0): a down database at start is
    a page that says so later, not a sidecar that does not start."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=0,
        max_size=POOL_SIZE,
        timeout=5.0,
        command_timeout=settings.console_query_timeout + 2,
        server_settings=session_settings(settings),
    )
    return pool


async def read(request: web.Request, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Runs one page's reads on a console connection; a slow or failed read is a PageError."""
    settings = request.app[CONSOLE_SETTINGS]
    try:
        async with request.app[POOL].acquire(timeout=5.0) as conn:
            return await work(conn)
    except asyncpg.QueryCanceledError:
        raise PageError(
            503,
            f"the query ran longer than JOBSIGHT_CONSOLE_QUERY_TIMEOUT "
            f"({settings.console_query_timeout:g} s): narrow the search (a job name, a time "
            "range), or create the search's indexes (`jobsight console-indexes`)",
        ) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        text = dburl.scrub(str(exc) or type(exc).__name__, settings.database_url)
        raise PageError(503, f"the database cannot be read: {text}") from None


@dataclass
class ActionsSetup:
    """What actions need, when they are on: the runners' verbs, form tokens, and the sidecar's
    own pool (it may write its schema) for the audit log."""

    operator: Operator | None
    tokens: Tokens | None
    audit_pool: asyncpg.Pool | None
    operators: tuple[str, ...] = ()

    def allowed(self, request: web.Request) -> bool:
        return self.operator is not None and request.get(USER) in self.operators


def acting(request: web.Request) -> dict[str, Any]:
    """The values every page needs to show actions: whether this user may act, its token."""
    setup = request.app[ACTIONS]
    if not setup.allowed(request) or setup.tokens is None or setup.operator is None:
        return {"can_act": False, "token": "", "retries_temporal": False}
    return {
        "can_act": True,
        "token": setup.tokens.issue(request[USER]),
        "retries_temporal": setup.operator.registry is not None,
    }


def page(template: str, current: str) -> Callable[..., Any]:
    """A handler from a function that returns a template's values; a PageError renders the page
    with only its message, at its status."""

    def wrap(
        values: Callable[[web.Request], Awaitable[dict[str, Any]]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                shown = {**acting(request), **await values(request)}
                body, status = render(template, current, error="", **shown), 200
            except (PageError, FilterError) as exc:
                status = exc.status if isinstance(exc, PageError) else 400
                body = render("message.html", current, error=str(exc), title=current.strip("/"))
            return web.Response(text=body, status=status, content_type="text/html")

        return handler

    return wrap


@page("queues.html", "/queues")
async def queues_page(request: web.Request) -> dict[str, Any]:
    lines, window = model.queue_lines(request.app[CONSOLE_STATE].views)
    paused = await read(request, queries.paused_names)
    warnings = model.boss_warnings(request.app[CONSOLE_STATE].views)
    return {"lines": lines, "window": window, "paused": paused, "boss_warnings": warnings}


@page("failures.html", "/failures")
async def failures_page(request: web.Request) -> dict[str, Any]:
    window_name = request.query.get("window", "24h")
    if window_name not in FAILURE_WINDOWS:
        raise FilterError(f"window: one of {', '.join(FAILURE_WINDOWS)}")
    window = FAILURE_WINDOWS[window_name]
    counted_at, attempts, groups = await failure_groups(request, window)
    chosen = request.query.get("group", "")
    group = next((g for g in groups if g.key == chosen), None)
    if chosen and group is None:
        raise PageError(404, "no such failure group in this window (it may have aged out)")
    return {
        "groups": groups,
        "group": group,
        "window_name": window_name,
        "windows": list(FAILURE_WINDOWS),
        "capped": len(attempts) >= queries.MAX_FAILED_READ,
        "counted_at": counted_at,
        "max_read": queries.MAX_FAILED_READ,
        "top": model.top,
    }


async def failure_groups(
    request: web.Request, window: float
) -> tuple[datetime, list[queries.FailedAttempt], list[model.FailureGroup]]:
    """The window's failure groups, computed at most every HOURS_TTL_S and once at a time
    (concurrent requests wait for the one read): grouping thousands of error texts is the
    page's cost, and an incident brings many people to it at once."""
    cache = request.app[FAILURES_CACHE]
    lock = cache.setdefault(("lock", window), asyncio.Lock())
    async with lock:
        kept = cache.get(window)
        if kept is not None and kept[0].timestamp() > time.time() - HOURS_TTL_S:
            return kept  # type: ignore[no-any-return]
        attempts = await read(request, lambda conn: queries.failed_attempts(conn, window))
        now = datetime.now(UTC)
        cache[window] = (now, attempts, model.failure_groups(attempts, now.timestamp(), window))
        return cache[window]  # type: ignore[no-any-return]


@page("schedules.html", "/schedules")
async def schedules_page(request: web.Request) -> dict[str, Any]:
    settings = request.app[CONSOLE_SETTINGS]
    pgqueue = await read(request, queries.pgqueue_schedules)
    temporal, temporal_error, temporal_read = temporal_schedules(
        request.app[CONSOLE_STATE], settings
    )
    now = datetime.now(UTC)
    late_after = timedelta(seconds=max(5.0, 2 * settings.poll_interval))
    return {
        "pgqueue": pgqueue,
        "temporal": temporal,
        "temporal_error": temporal_error,
        "temporal_read": temporal_read,
        "now": now,
        "late_after": late_after,
    }


@page("jobs.html", "/jobs")
async def jobs_page(request: web.Request) -> dict[str, Any]:
    where = parse_filter(request.query)
    after = parse_cursor(request.query)
    rows = await read(
        request, lambda conn: queries.search(conn, where, after, queries.PAGE_SIZE + 1)
    )
    more = len(rows) > queries.PAGE_SIZE
    rows = rows[: queries.PAGE_SIZE]
    next_link = ""
    if more and rows[-1].created_at is not None:
        cursor = Cursor(rows[-1].created_at, rows[-1].job_id)
        next_link = link("/jobs", {**where.query(), "after": cursor.encode()})
    return {
        "rows": rows,
        "where": where,
        "statuses": list(STATUSES),
        "relative": list(RELATIVE),
        "next_link": next_link,
        "first_link": link("/jobs", where.query()) if after else "",
        "raw": dict(request.query),
    }


@page("job.html", "/jobs")
async def job_page(request: web.Request) -> dict[str, Any]:
    settings = request.app[CONSOLE_SETTINGS]
    try:
        tenant, job_id = UUID(request.match_info["tenant"]), UUID(request.match_info["job_id"])
    except ValueError:
        raise PageError(404, "a job's address is /jobs/<tenant uuid>/<job uuid>") from None

    async def load(conn: asyncpg.Connection) -> tuple[Any, ...]:
        job = await queries.job(conn, tenant, job_id)
        if job is None:
            return None, [], None
        attempts = await queries.attempts(conn, tenant, job_id)
        queue_row = (
            await queries.pgqueue_row(conn, job_id) if job["runner_type"] == "pgqueue" else None
        )
        return job, attempts, queue_row

    job, attempts, queue_row = await read(request, load)
    if job is None:
        raise PageError(404, f"no job {job_id} of tenant {tenant}")
    scheduled_in = scheduling_span(job["trace_context"])
    trace_id = f"{scheduled_in.trace_id:032x}" if scheduled_in else job_id.hex
    trace = settings.trace_url.replace("{trace_id}", trace_id) if settings.trace_url else ""
    temporal_link = ""
    if job["runner_type"] == "temporal" and settings.temporal_ui_url and job["external_id"]:
        temporal_link = (
            f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
            f"/workflows/{job['external_id']}"
        )
    return {
        "job": job,
        "attempts": attempts,
        "queue_row": queue_row,
        "trace_link": trace,
        "trace_id": trace_id,
        "temporal_link": temporal_link,
        "show_payload": settings.console_payloads,
    }


async def job_name_hours(app: web.Application) -> tuple[list[model.JobNameHour] | None, str]:
    """The overview's last hour per job name, read at most every HOURS_TTL_S (the status page
    refreshes every 10 s and may be open on many screens); (None, why) when it cannot be read."""
    cache = app[HOURS_CACHE]
    now = time.time()
    if cache.get("at", 0.0) > now - HOURS_TTL_S:
        return cache["hours"], cache["error"]
    settings = app[CONSOLE_SETTINGS]
    hours: list[model.JobNameHour] | None = None
    error = ""
    try:
        async with app[POOL].acquire(timeout=5.0) as conn:
            hours = model.job_name_hours(await queries.overview(conn), now)
    except asyncpg.QueryCanceledError:
        error = "reading the last hour ran longer than JOBSIGHT_CONSOLE_QUERY_TIMEOUT"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        error = "the database cannot be read: " + dburl.scrub(str(exc), settings.database_url)
    cache.update(at=now, hours=hours or [], error=error)
    return hours or [], error


def temporal_schedules(
    state: SidecarState, settings: SidecarSettings
) -> tuple[list[ScheduleState] | None, str, datetime | None]:
    """Temporal's schedules as the temporal source last read them (once a minute; None when the
    source is off), why they are missing, and when they were read."""
    from jobsight.sources import enabled

    if "temporal" not in enabled(settings):
        return None, "", None
    view = state.views.get("temporal")
    snapshot = view.snapshot if view is not None else None
    if not isinstance(snapshot, TemporalSnapshot) or snapshot.schedules is None:
        error = view.status.error if view is not None and view.status else ""
        return [], f"Temporal has not been read yet{': ' + error if error else ''}", None
    read_at = datetime.fromtimestamp(snapshot.schedules.read_at, UTC)
    return snapshot.schedules.schedules, "", read_at


def add_console(
    app: web.Application,
    state: SidecarState,
    settings: SidecarSettings,
    pool: asyncpg.Pool,
    actions: ActionsSetup | None = None,
) -> None:
    from jobsight.console import action_routes

    app[POOL] = pool
    app[ACTIONS] = actions or ActionsSetup(None, None, None)
    app[CONSOLE_SETTINGS] = settings
    app[CONSOLE_STATE] = state
    app[HOURS_CACHE] = {}
    app[FAILURES_CACHE] = {}
    app.router.add_get("/queues", queues_page)
    app.router.add_get("/failures", failures_page)
    app.router.add_get("/schedules", schedules_page)
    app.router.add_get("/jobs", jobs_page)
    app.router.add_get("/jobs/{tenant}/{job_id}", job_page)
    action_routes.add_routes(app)
