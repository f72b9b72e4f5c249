"""The runner vocabulary without I/O: registry, retry maths, boundary types, status rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobsight.runners import (
    DuplicateHandlerError,
    HandlerConfig,
    HandlerRegistry,
    JobRunner,
    RetryPolicy,
    ScheduleOptions,
    UnknownJobError,
    ValidationError,
)
from jobsight.runners.status import FINISHED, JobStatus, can_transition


async def noop(ctx, data) -> None:  # type: ignore[no-untyped-def]
    return None


def test_registry_register_lookup_and_decorator() -> None:
    registry = HandlerRegistry()
    registry.register(HandlerConfig("cleanup", noop))

    @registry.handler("generate-invoice", retry=RetryPolicy(max_attempts=5), dead_letter="dlq")
    async def invoice(ctx, data) -> None:  # type: ignore[no-untyped-def]
        return None

    assert registry.names() == ["cleanup", "generate-invoice"]
    config = registry.get("generate-invoice")
    assert config.handler is invoice and config.retry.max_attempts == 5
    assert config.dead_letter == "dlq"
    assert "cleanup" in registry and len(registry) == 2


def test_registry_errors_name_the_job() -> None:
    registry = HandlerRegistry()
    registry.register(HandlerConfig("cleanup", noop))
    with pytest.raises(DuplicateHandlerError, match="'cleanup'"):
        registry.register(HandlerConfig("cleanup", noop))
    with pytest.raises(UnknownJobError, match=r"'import' \(registered: cleanup\)"):
        registry.get("import")


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (8, 60.0), (50, 60.0), (5000, 60.0)],
)
def test_retry_backoff(attempt: int, seconds: float) -> None:
    policy = RetryPolicy(initial_interval=timedelta(seconds=1), max_interval=timedelta(minutes=1))
    assert policy.delay_after(attempt) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: RetryPolicy(max_attempts=0), "retry.max_attempts"),
        (lambda: RetryPolicy(backoff_coefficient=0.5), "retry.backoff_coefficient"),
        (lambda: RetryPolicy(initial_interval=timedelta(seconds=-1)), "retry.initial_interval"),
        (lambda: RetryPolicy(initial_interval=timedelta(minutes=10)), "retry.max_interval"),
        (lambda: HandlerConfig("", noop), "name"),
        (lambda: HandlerConfig("x", "not callable"), "handler"),  # type: ignore[arg-type]
        (lambda: HandlerConfig("x", noop, timeout=timedelta(0)), "timeout"),
        (lambda: ScheduleOptions(run_at=datetime(2030, 1, 1)), "run_at"),
        (lambda: ScheduleOptions(singleton_key=" "), "singleton_key"),
        (lambda: ScheduleOptions(priority=10**6), "priority"),
    ],
)
def test_boundary_types_refuse_bad_values(make, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as err:
        make()
    assert err.value.field == field


def test_schedule_options_accept_good_values() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert ScheduleOptions(run_at=when, singleton_key="k", priority=5).run_at == when


def test_finished_jobs_never_move() -> None:
    for done in FINISHED:
        assert not any(can_transition(done, target) for target in JobStatus)


def test_protocol_is_checkable() -> None:
    class Partial:
        def register_handler(self, config: HandlerConfig) -> None: ...

    assert not isinstance(Partial(), JobRunner)
