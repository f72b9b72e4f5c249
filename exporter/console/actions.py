"""The console's actions: retry a failed job, cancel a waiting or running one (one, or every job a
search selects), pause and resume a pgqueue job name. Off unless configured: they run on a
database URL of their own that may write (JOBSIGHT_CONSOLE_ACTIONS_DATABASE_URL; the sidecar's
own stays read-only), only for authenticated users named in JOBSIGHT_CONSOLE_OPERATORS, only from
a page of this console (a same-origin request carrying the form's token), and each is written to
jobsight_sidecar.console_audit before it runs and marked done or failed after.

They use the runner library's verbs, so each engine behaves as its API does: pgqueue's
retry_job (a new job linked to the failed one) and cancel_job; Temporal's cancel_job (the
workflow is cancelled) and, with the application's handlers (JOBSIGHT_CONSOLE_HANDLERS), a
retry scheduled as a new job with the same name, tenant and data."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from jobsight.runners.registry import HandlerRegistry, load_registry
from jobsight.settings import SettingError, SidecarSettings

RETRY, CANCEL, PAUSE, RESUME = "retry", "cancel", "pause", "resume"
JOB_ACTIONS = (RETRY, CANCEL)
# The statuses each job action applies to, as the search names them (console/filters.py).
APPLIES_TO = {RETRY: ("failed",), CANCEL: ("waiting", "running")}
BULK_MAX = 500  # jobs one bulk action may change; a larger selection is refused: narrow it
TOKEN_WINDOW_S = 3600  # a form's token is good for this long (and the window before)

AUDIT_START = """
INSERT INTO jobsight_sidecar.console_audit (operator, action, target, jobs)
VALUES ($1, $2, $3, $4) RETURNING id
"""
AUDIT_END = "UPDATE jobsight_sidecar.console_audit SET outcome = $2, detail = $3 WHERE id = $1"
AUDIT_RECENT = """
SELECT id, at, operator, action, target, cardinality(jobs) AS jobs, outcome, detail
FROM jobsight_sidecar.console_audit ORDER BY id DESC LIMIT $1
"""


class ActionError(Exception):
    """An action refused or failed: the HTTP status and a sentence for the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_settings(settings: SidecarSettings, users: Mapping[str, bytes]) -> None:
    """Actions need someone to be: users in the web configuration, operators among them."""
    if not settings.console_actions_database_url:
        return
    if not users:
        raise SettingError(
            "JOBSIGHT_CONSOLE_ACTIONS_DATABASE_URL: actions need authenticated users: set "
            "basic_auth_users in JOBSIGHT_WEB_CONFIG_FILE"
        )
    if not settings.console_operators:
        raise SettingError(
            "JOBSIGHT_CONSOLE_OPERATORS: name the users who may run actions (comma-separated)"
        )
    unknown = [name for name in settings.console_operators if name not in users]
    if unknown:
        raise SettingError(
            f"JOBSIGHT_CONSOLE_OPERATORS: {unknown[0]!r} is not a user of the web configuration"
        )


class Tokens:
    """Form tokens against cross-site requests: a keyed digest of the user and the hour, the
    same on every replica (the key derives from the configuration) and never stored."""

    def __init__(self, settings: SidecarSettings, users: Mapping[str, bytes]) -> None:
        material = settings.console_actions_database_url.encode() + b"".join(sorted(users.values()))
        self.key = hashlib.sha256(b"jobsight console tokens\0" + material).digest()

    def issue(self, user: str, now: float | None = None) -> str:
        return self._digest(user, int((now or time.time()) // TOKEN_WINDOW_S))

    def valid(self, user: str, token: str, now: float | None = None) -> bool:
        window = int((now or time.time()) // TOKEN_WINDOW_S)
        return any(hmac.compare_digest(token, self._digest(user, w)) for w in (window, window - 1))

    def _digest(self, user: str, window: int) -> str:
        return hmac.new(self.key, f"{user}\0{window}".encode(), "sha256").hexdigest()


def same_origin(headers: Mapping[str, str], host: str) -> bool:
    """Whether a browser says the request comes from this site's own page."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = headers.get("Origin")
    if origin is not None:
        return origin.split("://", 1)[-1] == host
    return True  # neither header: not a browser's cross-site form (browsers send one)


@dataclass
class Operator:
    """Runs actions through the runners, each engine's own verbs, on the write URL."""

    settings: SidecarSettings
    registry: HandlerRegistry | None = None
    _runners: dict[str, Any] | None = None

    @classmethod
    def from_settings(cls, settings: SidecarSettings) -> Operator:
        registry = None
        if settings.console_handlers:
            try:
                registry = load_registry(settings.console_handlers)
            except ValueError as exc:
                raise SettingError(f"JOBSIGHT_CONSOLE_HANDLERS: {exc}") from None
        return cls(settings, registry)

    def runner(self, engine: str) -> Any:
        self._runners = self._runners if self._runners is not None else {}
        if engine not in self._runners:
            url = self.settings.console_actions_database_url
            if engine == "temporal":
                from jobsight.runners.temporal import TemporalJobRunner
                from jobsight.runners.temporal.settings import TemporalSettings
                from jobsight.sources.temporal import access

                options = TemporalSettings(
                    address=self.settings.temporal_address,
                    namespace=self.settings.temporal_namespace,
                    access=access(self.settings),
                )
                self._runners[engine] = TemporalJobRunner(url, self.registry, options, work=False)
            else:
                from jobsight.runners.pgqueue import PgQueueJobRunner

                self._runners[engine] = PgQueueJobRunner(url, self.registry, work=False)
        return self._runners[engine]

    async def retry(self, job: Mapping[str, Any]) -> str:
        if job["status"] != "failed":
            raise ActionError(409, f"job {job['job_id']} is {job['status']}, not failed")
        engine = job["runner_type"]
        if engine == "pgqueue":
            result = await self.runner(engine).retry_job(job["job_id"])
        elif engine == "temporal":
            if self.registry is None or job["type"] not in self.registry:
                raise ActionError(
                    409,
                    "retrying a Temporal job schedules it again with its handler's settings: "
                    "set JOBSIGHT_CONSOLE_HANDLERS to the application's registry",
                )
            data = job["metadata"]
            payload = json.loads(data) if isinstance(data, str) else (data or {})
            result = await self.runner(engine).schedule_job(
                job["type"], payload, tenant=job["tenant"], user_id=job["user_id"]
            )
        else:
            raise ActionError(409, f"jobs of runner {engine!r} cannot be retried from here")
        return f"new job {result.job_id}"

    async def cancel(self, job: Mapping[str, Any]) -> str:
        engine = job["runner_type"]
        if engine not in ("pgqueue", "temporal"):
            raise ActionError(409, f"jobs of runner {engine!r} cannot be cancelled from here")
        if not await self.runner(engine).cancel_job(job["job_id"]):
            raise ActionError(409, f"job {job['job_id']} was no longer waiting or running")
        return "cancelled"

    async def pause(self, name: str, user: str) -> str:
        changed = await self.runner("pgqueue").pause(name, by=user)
        return "paused" if changed else "was already paused"

    async def resume(self, name: str) -> str:
        changed = await self.runner("pgqueue").resume(name)
        return "resumed" if changed else "was not paused"

    async def close(self) -> None:
        for runner in (self._runners or {}).values():
            await runner.close()


async def audited_start(
    pool: asyncpg.Pool | asyncpg.Connection, user: str, action: str, target: str, jobs: list[UUID]
) -> int:
    entry: int = await pool.fetchval(AUDIT_START, user, action, target[:500], jobs)
    return entry


async def audited_end(
    pool: asyncpg.Pool | asyncpg.Connection, entry: int, outcome: str, detail: str
) -> None:
    await pool.execute(AUDIT_END, entry, outcome, detail[:2000])


async def recent(conn: asyncpg.Connection, limit: int = 100) -> list[dict[str, Any]] | None:
    """The latest audit entries, newest first; None before migration 0007."""
    if not await conn.fetchval("SELECT to_regclass('jobsight_sidecar.console_audit') IS NOT NULL"):
        return None
    return [dict(r) for r in await conn.fetch(AUDIT_RECENT, limit)]
