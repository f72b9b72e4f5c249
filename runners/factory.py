"""create_runner: picks an engine from settings, with fallback and per-job-name routing.

Environment (the seed's names): JOB_RUNNER_TYPE=pgqueue|temporal,
JOB_RUNNER_FALLBACK_TO_PGQUEUE=true|false, the Temporal engine's circuit breaker
JOB_RUNNER_BREAKER_FAILURES (5) within JOB_RUNNER_BREAKER_WINDOW (30s) open it for
JOB_RUNNER_BREAKER_COOLDOWN (15s), JOB_RUNNER_ROUTES="generate-invoice=temporal,*=pgqueue",
DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_JOB_TASK_QUEUE, and for a secured
Temporal TEMPORAL_TLS, TEMPORAL_TLS_CA, TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY,
TEMPORAL_TLS_SERVER_NAME, TEMPORAL_API_KEY (runners/temporal_access.py).
Engines are imported only when chosen.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobsight.runners import defaults
from jobsight.runners.breaker import BreakerSettings
from jobsight.runners.durations import parse_duration
from jobsight.runners.errors import JobNotFoundError, ValidationError
from jobsight.runners.interface import (
    HandlerConfig,
    JobRunner,
    JobStatusInfo,
    ScheduleOptions,
    ScheduleResult,
)
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.temporal_access import TemporalAccess
from jobsight.runners.validation import check_uuid

log = logging.getLogger("jobsight.factory")
ENGINES = ("pgqueue", "temporal")


@dataclass(frozen=True)
class RunnerSettings:
    database_url: str
    runner_type: str = "pgqueue"
    fallback_to_pgqueue: bool = False
    routes: tuple[tuple[str, str], ...] = ()  # (job name pattern, engine), first match wins
    temporal_address: str = defaults.TEMPORAL_ADDRESS
    temporal_namespace: str = defaults.TEMPORAL_NAMESPACE
    temporal_task_queue: str = defaults.TEMPORAL_TASK_QUEUE
    temporal_access: TemporalAccess = field(default_factory=TemporalAccess)  # TLS, API key
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    engine_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.database_url:
            raise ValidationError("DATABASE_URL", "is required")
        if self.runner_type not in ENGINES:
            raise ValidationError(
                "JOB_RUNNER_TYPE", f"must be one of {ENGINES}, got {self.runner_type!r}"
            )
        for pattern, engine in self.routes:
            if engine not in ENGINES:
                raise ValidationError("JOB_RUNNER_ROUTES", f"{pattern}={engine}: unknown engine")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunnerSettings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            runner_type=env.get("JOB_RUNNER_TYPE", "pgqueue").strip().lower(),
            fallback_to_pgqueue=parse_bool(
                env.get("JOB_RUNNER_FALLBACK_TO_PGQUEUE", "false"), "JOB_RUNNER_FALLBACK_TO_PGQUEUE"
            ),
            routes=parse_routes(env.get("JOB_RUNNER_ROUTES", "")),
            temporal_address=env.get("TEMPORAL_ADDRESS", defaults.TEMPORAL_ADDRESS),
            temporal_namespace=env.get("TEMPORAL_NAMESPACE", defaults.TEMPORAL_NAMESPACE),
            temporal_task_queue=env.get("TEMPORAL_JOB_TASK_QUEUE", defaults.TEMPORAL_TASK_QUEUE),
            temporal_access=TemporalAccess.from_env(env),
            breaker=breaker_from_env(env),
        )

    def engines(self) -> set[str]:
        return {engine for _, engine in self.routes} or {self.runner_type}


def parse_bool(value: str, setting: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValidationError(setting, f"must be true or false, got {value!r}")


def breaker_from_env(env: Mapping[str, str]) -> BreakerSettings:
    def given(name: str, default: str) -> str:
        return env.get(f"JOB_RUNNER_BREAKER_{name}", default)

    default = BreakerSettings()
    return BreakerSettings(
        failures=parse_count(given("FAILURES", str(default.failures)),
                             "JOB_RUNNER_BREAKER_FAILURES"),
        window=parse_seconds(given("WINDOW", f"{default.window:g}s"), "JOB_RUNNER_BREAKER_WINDOW"),
        cooldown=parse_seconds(given("COOLDOWN", f"{default.cooldown:g}s"),
                               "JOB_RUNNER_BREAKER_COOLDOWN"),
    )  # fmt: skip


def parse_count(value: str, setting: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValidationError(setting, f"must be a whole number, got {value!r}") from None


def parse_seconds(value: str, setting: str) -> float:
    """Seconds, or a duration with a unit ("30s", "2m")."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValidationError(setting, str(exc)) from None


def parse_routes(text: str) -> tuple[tuple[str, str], ...]:
    """ "name=engine,pattern*=engine,*=engine" -> ((pattern, engine), ...), order kept."""
    routes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        pattern, sep, engine = part.partition("=")
        if not sep or not pattern.strip() or not engine.strip():
            raise ValidationError("JOB_RUNNER_ROUTES", f"{part!r} is not name=engine")
        routes.append((pattern.strip(), engine.strip().lower()))
    return tuple(routes)


def engine_settings(engine: str, settings: RunnerSettings) -> Any:
    """The settings object of one engine: `engine_options[engine]` when given, else the engine's
    defaults (for Temporal, with the address, namespace and task queue of `settings`)."""
    given = settings.engine_options.get(engine)
    if given is not None:
        return given
    if engine == "temporal":
        from jobsight.runners.temporal.settings import TemporalSettings

        return TemporalSettings(
            address=settings.temporal_address,
            namespace=settings.temporal_namespace,
            task_queue=settings.temporal_task_queue,
            access=settings.temporal_access,
        )
    from jobsight.runners.pgqueue.settings import PgQueueSettings

    return PgQueueSettings()


def build_runner(engine: str, settings: RunnerSettings, registry: HandlerRegistry) -> JobRunner:
    """One engine's runner, not yet connected (imports only that engine)."""
    options = engine_settings(engine, settings)
    if engine == "temporal":
        from jobsight.runners.temporal import TemporalJobRunner

        return TemporalJobRunner(settings.database_url, registry, options)
    from jobsight.runners.pgqueue import PgQueueJobRunner

    return PgQueueJobRunner(settings.database_url, registry, options)


async def create_runner(settings: RunnerSettings, registry: HandlerRegistry) -> JobRunner:
    """The runner the settings ask for, connected. With routes, a RoutingJobRunner.

    The Temporal engine runs behind a circuit breaker (runners/fallback.py): repeated outages
    open it, and while it is open jobs go to pgqueue when JOB_RUNNER_FALLBACK_TO_PGQUEUE allows,
    else fail fast. Temporal unreachable at start: with fallback the breaker starts open (and
    says so), without it TemporalUnavailableError is raised."""
    engines: dict[str, JobRunner] = {}
    wanted = settings.engines()
    if "pgqueue" in wanted or ("temporal" in wanted and settings.fallback_to_pgqueue):
        engines["pgqueue"] = build_runner("pgqueue", settings, registry)
    if "temporal" in wanted:
        engines["temporal"] = await _guarded_temporal(settings, registry, engines.get("pgqueue"))
    if not settings.routes:
        return engines[settings.runner_type]
    return RoutingJobRunner(settings.routes, {name: engines[name] for name in wanted})


async def _guarded_temporal(
    settings: RunnerSettings, registry: HandlerRegistry, fallback: JobRunner | None
) -> JobRunner:
    from jobsight.runners.fallback import BreakerJobRunner
    from jobsight.runners.temporal import TemporalJobRunner, TemporalUnavailableError

    temporal = build_runner("temporal", settings, registry)
    assert isinstance(temporal, TemporalJobRunner)
    # The routes' own pgqueue engine, when they have one, is started and stopped by the routing
    # runner; otherwise the breaker's runner owns its fallback.
    owns = not (settings.routes and "pgqueue" in settings.engines())
    guarded = BreakerJobRunner(temporal, fallback, settings.breaker, owns_fallback=owns)
    try:
        await temporal.client()
    except TemporalUnavailableError as exc:
        if fallback is None:
            raise
        log.warning("%s; falling back to pgqueue (JOB_RUNNER_FALLBACK_TO_PGQUEUE) until it "
                    "answers", exc)  # fmt: skip
        guarded.breaker.trip(f"Temporal unreachable at start: {exc}")
    return guarded


async def owner_of(runners: list[JobRunner], job_id: uuid.UUID | str) -> JobRunner:
    """The runner whose engine has the job's row (JobNotFoundError when none has): where a job
    of several engines (routes, a fallback) is cancelled and asked about."""
    target = check_uuid("job_id", job_id)
    for runner in runners:
        try:
            await runner.get_job_status(target)
            return runner
        except JobNotFoundError:
            continue
    raise JobNotFoundError(target)


async def cancel_on_owner(runners: list[JobRunner], job_id: uuid.UUID | str) -> bool:
    """Cancels a job on the engine that has its row; an id no row has may be a recurring
    schedule's, which whichever engine knows it cancels."""
    try:
        return await (await owner_of(runners, job_id)).cancel_job(job_id)
    except JobNotFoundError:
        for runner in runners:
            if await runner.cancel_job(job_id):
                return True
        return False


class RoutingJobRunner:
    """Hybrid mode: each job name goes to the engine of the first route that matches it
    (fnmatch patterns; "*" catches the rest). Cancel and status follow the job's own row."""

    runner_type = "routing"

    def __init__(self, routes: tuple[tuple[str, str], ...], engines: dict[str, JobRunner]):
        self._routes = routes
        self._engines = engines

    def engine_for(self, job_name: str) -> JobRunner:
        for pattern, engine in self._routes:
            if fnmatch.fnmatchcase(job_name, pattern):
                return self._engines[engine]
        raise ValidationError("job_name", f"{job_name!r} matches no JOB_RUNNER_ROUTES entry")

    def register_handler(self, config: HandlerConfig) -> None:
        # Every engine shares one registry; registering once registers for all.
        next(iter(self._engines.values())).register_handler(config)

    async def schedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
    ) -> ScheduleResult:
        return await self.engine_for(job_name).schedule_job(
            job_name, data, tenant=tenant, options=options
        )

    async def schedule_job_at(
        self,
        job_name: str,
        data: dict[str, Any],
        run_at: datetime,
        *,
        tenant: uuid.UUID | str,
        options: ScheduleOptions | None = None,
    ) -> ScheduleResult:
        return await self.engine_for(job_name).schedule_job_at(
            job_name, data, run_at, tenant=tenant, options=options
        )

    async def schedule_recurring_job(
        self, job_name: str, data: dict[str, Any], interval: str, *, tenant: uuid.UUID | str
    ) -> ScheduleResult:
        return await self.engine_for(job_name).schedule_recurring_job(
            job_name, data, interval, tenant=tenant
        )

    async def cancel_job(self, job_id: uuid.UUID | str) -> bool:
        return await cancel_on_owner(list(self._engines.values()), job_id)

    async def get_job_status(self, job_id: uuid.UUID | str) -> JobStatusInfo:
        return await (await owner_of(list(self._engines.values()), job_id)).get_job_status(job_id)

    async def start(self) -> None:
        for runner in self._engines.values():
            await runner.start()

    async def stop(self, grace: float | None = None) -> None:
        """Stops every engine, all within the same grace (they stop side by side)."""
        await asyncio.gather(*(runner.stop(grace) for runner in self._engines.values()))
