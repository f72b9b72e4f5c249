"""Recurrence parsing and next-time maths, table-driven, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobsight.runners import ValidationError
from jobsight.runners.recurrence import parse_recurrence

T0 = datetime(2026, 11, 23, 10, 17, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("24 hours", T0 + timedelta(hours=24)),
        ("15 minutes", T0 + timedelta(minutes=15)),
        ("1 minute", T0 + timedelta(minutes=1)),
        ("30 seconds", T0 + timedelta(seconds=30)),
        ("2h", T0 + timedelta(hours=2)),
        ("1 day", T0 + timedelta(days=1)),
        ("1 week", T0 + timedelta(weeks=1)),
        ("  5 Mins ", T0 + timedelta(minutes=5)),
        ("0 * * * *", datetime(2026, 11, 23, 11, 0, tzinfo=UTC)),
        ("*/5 * * * *", datetime(2026, 11, 23, 10, 20, tzinfo=UTC)),
        ("0 3 * * *", datetime(2026, 11, 24, 3, 0, tzinfo=UTC)),
        ("0 0 1 * *", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_next_after(spec: str, expected: datetime) -> None:
    assert parse_recurrence(spec).next_after(T0) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "must be a cron expression"),
        ("0 seconds", "shorter than"),
        ("3 fortnights", "unknown unit"),
        ("every day", "neither an interval"),
        ("61 * * * *", "bad cron expression"),
        ("* * * *", "neither an interval"),
        ("a b c d e", "bad cron expression"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        parse_recurrence(spec)
    assert err.value.field == "interval"


def test_naive_moment_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_recurrence("1 hour").next_after(datetime(2026, 1, 1))
