"""Bad input to the scheduling API is refused with ValidationError naming the field, before
anything is written; never RecursionError, TypeError, OverflowError, a croniter or an asyncpg
error. The named cases from real reports, then a property over any input (hypothesis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobsight.runners import HandlerRegistry, ScheduleOptions
from jobsight.runners.errors import UnknownJobError, ValidationError
from jobsight.runners.pgqueue import PgQueueJobRunner

TENANT = "4b1d5e7a-0000-4000-8000-0000000ba0d1"
NAME = f"prop-{uuid.uuid4().hex[:8]}"


async def _noop(ctx, data):  # type: ignore[no-untyped-def]
    return None


def _registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.handler(NAME)(_noop)
    return registry


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    cursor = root
    for _ in range(levels):
        cursor["a"] = {}
        cursor = cursor["a"]
    return root


Call = Callable[[PgQueueJobRunner], Coroutine[Any, Any, object]]
BAD: dict[str, tuple[str, Call]] = {
    "deeply nested": ("data", lambda r: r.schedule_job(NAME, _deep(100_000), tenant=TENANT)),
    "lone surrogate": ("data", lambda r: r.schedule_job(NAME, {"f": "\udcff"}, tenant=TENANT)),
    "surrogate key": ("data", lambda r: r.schedule_job(NAME, {"\udcff": 1}, tenant=TENANT)),
    "NUL in data": ("data", lambda r: r.schedule_job(NAME, {"f": "a\x00b"}, tenant=TENANT)),
    "NUL in name": ("job_name", lambda r: r.schedule_job("a\x00b", {}, tenant=TENANT)),
    "tenant not a UUID": ("tenant", lambda r: r.schedule_job(NAME, {}, tenant="acme-corp")),
    "NUL in singleton key": ("singleton_key", lambda r: r.schedule_job(
        NAME, {}, tenant=TENANT, options=ScheduleOptions(singleton_key="k\x00"))),
    "priority as text": ("priority", lambda r: r.schedule_job(
        NAME, {}, tenant=TENANT, options=ScheduleOptions(priority="5"))),  # type: ignore[arg-type]
    "priority True": ("priority", lambda r: r.schedule_job(
        NAME, {}, tenant=TENANT, options=ScheduleOptions(priority=True))),
    "priority 1.5": ("priority", lambda r: r.schedule_job(
        NAME, {}, tenant=TENANT, options=ScheduleOptions(priority=1.5))),  # type: ignore[arg-type]
    "cron that never fires": ("interval", lambda r: r.schedule_recurring_job(
        NAME, {}, "0 0 30 2 *", tenant=TENANT)),
    "interval overflow": ("interval", lambda r: r.schedule_recurring_job(
        NAME, {}, "99999999999 weeks", tenant=TENANT)),
}  # fmt: skip


def test_a_handler_name_with_nul_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^name: must not contain"):
        HandlerRegistry().handler("import\x00")(_noop)


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_input_names_the_field(case: str, shared_db: str) -> None:
    field, call = BAD[case]
    runner = PgQueueJobRunner(shared_db, _registry(), work=False)
    try:
        with pytest.raises(ValidationError) as refused:
            await call(runner)
        assert refused.value.field == field
    finally:
        await runner.stop()


async def test_a_backslash_u0000_that_is_text_is_kept(db: asyncpg.Connection, shared_db: str):
    runner = PgQueueJobRunner(shared_db, _registry(), work=False)
    try:
        job = await runner.schedule_job(NAME, {"path": "C:\\u0000dir"}, tenant=TENANT)
    finally:
        await runner.stop()
    stored = await db.fetchval("SELECT metadata->>'path' FROM jobs WHERE job_id = $1", job.job_id)
    assert stored == "C:\\u0000dir"


# Any JSON-ish value: every character (NUL, surrogates), huge and non-finite numbers, deep nests.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(), json_values, max_size=5) | json_values
names = st.just(NAME) | st.text(max_size=10)
priorities = st.integers() | st.booleans() | st.floats() | st.text(max_size=3)
keys = st.none() | st.text(max_size=8)
tenants = st.just(TENANT) | st.uuids().map(str) | st.text(max_size=8)
intervals = st.sampled_from(["5 minutes", "0 3 * * *", "0 0 30 2 *", "99999999999 weeks"])


def test_any_input_schedules_one_job_or_is_refused_and_writes_nothing(shared_db: str) -> None:
    """Property: whatever the arguments, a call schedules exactly one job (or names the one a
    singleton key already holds) or raises ValidationError (UnknownJobError for a well-formed
    name nobody registered) and the database is as before."""
    loop = asyncio.new_event_loop()
    runner = PgQueueJobRunner(shared_db, _registry(), work=False)

    async def rows() -> tuple[int, int, int]:
        pool = await runner.pool()
        return (
            await pool.fetchval("SELECT count(*) FROM jobs WHERE type = $1", NAME),
            await pool.fetchval("SELECT count(*) FROM pgqueue.job WHERE name = $1", NAME),
            await pool.fetchval("SELECT count(*) FROM pgqueue.schedule WHERE name = $1", NAME),
        )

    async def attempt(name: Any, data: Any, tenant: Any, priority: Any, key: Any,
                      interval: str | None) -> None:  # fmt: skip
        before = await rows()
        try:
            options = ScheduleOptions(priority=priority, singleton_key=key)
            if interval is None:
                result = await runner.schedule_job(name, data, tenant=tenant, options=options)
            else:
                result = await runner.schedule_recurring_job(name, data, interval, tenant=tenant)
        except (ValidationError, UnknownJobError):
            assert await rows() == before
            return
        after = await rows()
        grew = tuple(a - b for a, b in zip(after, before, strict=True))
        if interval is not None:
            assert grew == (0, 0, 1)
        elif result.duplicate:
            assert grew == (0, 0, 0)
        else:
            assert grew == (1, 1, 0)

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(names, payloads, tenants, priorities, keys, st.none() | intervals)
    def check(name: Any, data: Any, tenant: Any, priority: Any, key: Any, interval: Any) -> None:
        loop.run_until_complete(attempt(name, data, tenant, priority, key, interval))

    try:
        check()
    finally:
        loop.run_until_complete(runner.stop())
        loop.close()


async def test_a_database_never_migrated_is_one_clear_error(
    empty_db: str, temporal_address: str
) -> None:
    from jobsight.runners import SchemaMissingError
    from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings

    registry = HandlerRegistry()

    @registry.handler("noop")
    async def noop(ctx, data):  # type: ignore[no-untyped-def]
        return None

    runners = [
        PgQueueJobRunner(empty_db, registry),
        TemporalJobRunner(empty_db, registry, TemporalSettings(address=temporal_address)),
    ]
    for runner in runners:
        with pytest.raises(SchemaMissingError, match="run `jobsight migrate up`"):
            await runner.schedule_job("noop", {}, tenant=uuid.uuid4())
        await runner.stop()
