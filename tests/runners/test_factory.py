"""The runner factory: settings from the environment, routing, and the fallback to pgqueue."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobsight.runners import HandlerRegistry, ValidationError
from jobsight.runners.breaker import BreakerState
from jobsight.runners.factory import RoutingJobRunner, RunnerSettings, create_runner, parse_routes
from jobsight.runners.fallback import BreakerJobRunner
from jobsight.runners.pgqueue import PgQueueJobRunner
from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings, TemporalUnavailableError

URL = "postgresql://u@127.0.0.1:5432/app"


def test_settings_from_env() -> None:
    settings = RunnerSettings.from_env({
        "DATABASE_URL": URL, "JOB_RUNNER_TYPE": "Temporal",
        "JOB_RUNNER_FALLBACK_TO_PGQUEUE": "yes", "TEMPORAL_ADDRESS": "t:7233",
        "TEMPORAL_NAMESPACE": "jobs", "TEMPORAL_JOB_TASK_QUEUE": "alga-jobs",
        "JOB_RUNNER_ROUTES": "generate-invoice=temporal, invoice_*=temporal ,*=pgqueue",
    })  # fmt: skip
    assert settings.runner_type == "temporal" and settings.fallback_to_pgqueue
    assert (settings.temporal_address, settings.temporal_namespace,
            settings.temporal_task_queue) == ("t:7233", "jobs", "alga-jobs")  # fmt: skip
    assert settings.routes == (
        ("generate-invoice", "temporal"), ("invoice_*", "temporal"), ("*", "pgqueue"),
    )  # fmt: skip
    assert settings.engines() == {"temporal", "pgqueue"}


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({}, "DATABASE_URL"),
        ({"DATABASE_URL": URL, "JOB_RUNNER_TYPE": "pgboss"}, "JOB_RUNNER_TYPE"),
        ({"DATABASE_URL": URL, "JOB_RUNNER_FALLBACK_TO_PGQUEUE": "maybe"},
         "JOB_RUNNER_FALLBACK_TO_PGQUEUE"),
        ({"DATABASE_URL": URL, "JOB_RUNNER_ROUTES": "a=temporal,b"}, "JOB_RUNNER_ROUTES"),
        ({"DATABASE_URL": URL, "JOB_RUNNER_ROUTES": "a=celery"}, "JOB_RUNNER_ROUTES"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ValidationError) as err:
        RunnerSettings.from_env(env)
    assert err.value.field == setting


def test_routing_picks_the_first_match() -> None:
    pg, temporal = object(), object()
    router = RoutingJobRunner(parse_routes("invoice_*=temporal,*=pgqueue"),
                              {"pgqueue": pg, "temporal": temporal})  # type: ignore[dict-item]  # fmt: skip
    assert router.engine_for("invoice_zip") is temporal
    assert router.engine_for("cleanup") is pg
    strict = RoutingJobRunner(parse_routes("a=pgqueue"), {"pgqueue": pg})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="matches no JOB_RUNNER_ROUTES entry"):
        strict.engine_for("b")


async def test_fallback_to_pgqueue_when_temporal_is_unreachable(migrated_db: str) -> None:
    unreachable = TemporalSettings(address="127.0.0.1:1", connect_timeout=timedelta(seconds=2))
    registry = HandlerRegistry()
    base = {"database_url": migrated_db, "runner_type": "temporal",
            "engine_options": {"temporal": unreachable}}  # fmt: skip
    runner = await create_runner(RunnerSettings(**base, fallback_to_pgqueue=True), registry)
    assert isinstance(runner, BreakerJobRunner) and runner.breaker.state == BreakerState.OPEN
    assert isinstance(runner.fallback, PgQueueJobRunner)
    with pytest.raises(TemporalUnavailableError, match="cannot reach Temporal"):
        await create_runner(RunnerSettings(**base), registry)


async def test_create_runner_builds_the_chosen_engines(migrated_db: str, temporal_address: str):
    registry = HandlerRegistry()
    temporal = TemporalSettings(address=temporal_address)
    chosen = await create_runner(
        RunnerSettings(migrated_db, runner_type="temporal",
                       engine_options={"temporal": temporal}), registry)  # fmt: skip
    assert isinstance(chosen, BreakerJobRunner) and chosen.fallback is None
    assert isinstance(chosen.temporal, TemporalJobRunner)
    hybrid = await create_runner(
        RunnerSettings(migrated_db, routes=parse_routes("x=temporal,*=pgqueue"),
                       engine_options={"temporal": temporal}), registry)  # fmt: skip
    assert isinstance(hybrid, RoutingJobRunner)
    assert isinstance(hybrid.engine_for("x"), BreakerJobRunner)
    assert isinstance(hybrid.engine_for("y"), PgQueueJobRunner)
