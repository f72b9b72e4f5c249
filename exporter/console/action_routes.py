"""The console's action endpoints (POST, from the console's own forms) and its audit page:

    POST /actions/job     retry or cancel one job
    POST /actions/bulk    retry or cancel what a search selects: a count to confirm, then the run
    POST /actions/queue   pause or resume a pgqueue job name
    GET  /audit           who did what, to which jobs, when, and how it ended

Every POST is refused (403, with the reason) unless actions are on, the user is an operator, the
request comes from this console's page and carries its token. Each action is audited before it
runs (console/actions.py)."""

from __future__ import annotations

from functools import partial
from typing import Any
from uuid import UUID

from aiohttp import web
from multidict import MultiDictProxy

from jobsight.console import queries
from jobsight.console.actions import (
    APPLIES_TO,
    BULK_MAX,
    JOB_ACTIONS,
    PAUSE,
    RESUME,
    RETRY,
    ActionError,
    audited_end,
    audited_start,
    recent,
    same_origin,
)
from jobsight.console.filters import FilterError, link, parse_filter
from jobsight.console.routes import ACTIONS, PageError, page, read
from jobsight.console.templating import render
from jobsight.runners.errors import ValidationError
from jobsight.sidecar.webconfig import USER

MAX_FORM_BYTES = 16_384


async def authorized(request: web.Request) -> tuple[str, MultiDictProxy[str]]:
    """The operator and the form of an action request, or an ActionError saying why not."""
    setup = request.app[ACTIONS]
    if setup.operator is None or setup.tokens is None:
        raise ActionError(
            403, "actions are off: set JOBSIGHT_CONSOLE_ACTIONS_DATABASE_URL to turn them on"
        )
    user = request.get(USER)
    if user not in setup.operators:
        raise ActionError(
            403, f"only operators may act, and {user or 'an anonymous user'} is not one"
        )
    if not same_origin(request.headers, request.host):
        raise ActionError(403, "a request from another site is refused")
    if (request.content_length or 0) > MAX_FORM_BYTES:
        raise ActionError(413, "the form is too large")
    form = await request.post()
    token = form.get("token", "")
    if not isinstance(token, str) or not setup.tokens.valid(user, token):
        raise ActionError(403, "the form is stale or not from this console: reload the page")
    return user, form  # type: ignore[return-value]


def job_action_of(form: MultiDictProxy[str]) -> str:
    action = str(form.get("action", ""))
    if action not in JOB_ACTIONS:
        raise ActionError(400, f"action: one of {', '.join(JOB_ACTIONS)}")
    return action


def done(title: str, message: str, entry: int | None, back: str, status: int = 200) -> web.Response:
    body = render("done.html", "/audit", title=title, message=message, entry=entry, back=back)
    return web.Response(text=body, status=status, content_type="text/html")


def refused(error: Exception, back: str) -> web.Response:
    status = error.status if isinstance(error, ActionError | PageError) else 400
    return done("Not done", str(error), None, back, status)


async def job_action(request: web.Request) -> web.Response:
    back = "/jobs"
    try:
        user, form = await authorized(request)
        action = job_action_of(form)
        try:
            tenant, job_id = UUID(str(form.get("tenant"))), UUID(str(form.get("job_id")))
        except ValueError:
            raise ActionError(400, "tenant and job_id: UUIDs") from None
        back = f"/jobs/{tenant}/{job_id}"
        job = await read(request, lambda conn: queries.job(conn, tenant, job_id))
        if job is None:
            raise ActionError(404, f"no job {job_id} of tenant {tenant}")
        setup = request.app[ACTIONS]
        assert setup.operator is not None and setup.audit_pool is not None
        entry = await audited_start(setup.audit_pool, user, action, str(job_id), [job_id])
        outcome, detail = await run_one(setup.operator, action, job)
        await audited_end(setup.audit_pool, entry, outcome, detail)
    except (ActionError, PageError, FilterError) as exc:
        return refused(exc, back)
    status = 200 if outcome == "done" else 409
    return done(f"{action.capitalize()} {job['type']}", detail, entry, back, status)


async def run_one(operator: Any, action: str, job: dict[str, Any]) -> tuple[str, str]:
    """Runs one job action: ("done", what happened) or ("failed", why)."""
    try:
        detail = await (operator.retry(job) if action == RETRY else operator.cancel(job))
    except ActionError as exc:
        return "failed", str(exc)
    except ValidationError as exc:
        return "failed", str(exc)
    except Exception as exc:  # an engine down: the audit says so, the console goes on
        return "failed", f"{type(exc).__name__}: {str(exc)[:300]}"
    return "done", detail


async def bulk_action(request: web.Request) -> web.Response:
    back = "/jobs"
    try:
        user, form = await authorized(request)
        action = job_action_of(form)
        fields = {k: str(v) for k, v in form.items() if k not in ("token", "action", "confirm")}
        where = parse_filter(fields)
        back = link("/jobs", where.query())
        if where.status not in APPLIES_TO[action]:
            wanted = " or ".join(f"status={s}" for s in APPLIES_TO[action])
            raise ActionError(400, f"bulk {action} needs a search with {wanted}")
        size = BULK_MAX + 1
        rows = await read(request, lambda conn: queries.search(conn, where, None, size))
        if len(rows) > BULK_MAX:
            raise ActionError(
                400, f"the search selects more than {BULK_MAX} jobs: narrow it (a time range)"
            )
        confirmed = str(form.get("confirm", ""))
        if confirmed != str(len(rows)):
            changed = bool(confirmed)
            return confirm_page(request, action, where.query(), len(rows), changed, back)
        setup = request.app[ACTIONS]
        assert setup.operator is not None and setup.audit_pool is not None
        ids = [r.job_id for r in rows]
        target = link("/jobs", where.query())
        entry = await audited_start(setup.audit_pool, user, f"bulk {action}", target, ids)
        failures = []
        for row in rows:
            job = await read(request, partial(queries.job, tenant=row.tenant, job_id=row.job_id))
            outcome, detail = (
                await run_one(setup.operator, action, job) if job else ("failed", "gone")
            )
            if outcome != "done":
                failures.append(f"{row.job_id}: {detail}")
        summary = f"{len(rows) - len(failures)} of {len(rows)} jobs done"
        detail = summary + ("; " + "; ".join(failures[:20]) if failures else "")
        await audited_end(setup.audit_pool, entry, "failed" if failures else "done", detail)
    except (ActionError, PageError, FilterError) as exc:
        return refused(exc, back)
    return done(f"Bulk {action}", detail, entry, back, 200 if not failures else 409)


def confirm_page(
    request: web.Request,
    action: str,
    fields: dict[str, str],
    count: int,
    changed: bool,
    back: str,
) -> web.Response:
    setup = request.app[ACTIONS]
    assert setup.tokens is not None
    body = render(
        "confirm.html",
        "/jobs",
        action=action,
        fields=fields,
        count=count,
        changed=changed,
        back=back,
        token=setup.tokens.issue(request[USER]),
    )
    return web.Response(text=body, content_type="text/html")


async def queue_action(request: web.Request) -> web.Response:
    back = "/queues"
    try:
        user, form = await authorized(request)
        action, name = str(form.get("action", "")), str(form.get("name", "")).strip()
        if action not in (PAUSE, RESUME) or not name:
            raise ActionError(400, "action: pause or resume, with a job name")
        setup = request.app[ACTIONS]
        assert setup.operator is not None and setup.audit_pool is not None
        entry = await audited_start(setup.audit_pool, user, action, name, [])
        try:
            detail = await (
                setup.operator.pause(name, user) if action == PAUSE else setup.operator.resume(name)
            )
            outcome = "done"
        except Exception as exc:  # a refused name or a database error: audited, said
            outcome, detail = "failed", f"{type(exc).__name__}: {str(exc)[:300]}"
        await audited_end(setup.audit_pool, entry, outcome, detail)
    except (ActionError, PageError, FilterError) as exc:
        return refused(exc, back)
    return done(
        f"{action.capitalize()} {name}", detail, entry, back, 200 if outcome == "done" else 409
    )


@page("audit.html", "/audit")
async def audit_page(request: web.Request) -> dict[str, Any]:
    return {"entries": await read(request, recent), "actions_on": actions_on(request)}


def actions_on(request: web.Request) -> bool:
    return request.app[ACTIONS].operator is not None


def add_routes(app: web.Application) -> None:
    app.router.add_post("/actions/job", job_action)
    app.router.add_post("/actions/bulk", bulk_action)
    app.router.add_post("/actions/queue", queue_action)
    app.router.add_get("/audit", audit_page)
