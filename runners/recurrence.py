"""Recurring schedules: a cron expression ("0 3 * * *", UTC) or an interval ("24 hours").

Pure: parsing and next-time maths only, shared by both engines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jobsight.runners.errors import ValidationError

_UNITS = {
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hr": 3600, "hour": 3600,
    "d": 86400, "day": 86400,
    "w": 604800, "week": 604800,
}  # fmt: skip
_INTERVAL = re.compile(r"^\s*(\d+)\s*([a-z]+?)s?\s*$")
MIN_INTERVAL = timedelta(seconds=1)
MAX_INTERVAL = timedelta(days=3660)  # ten years: the next run stays a date


@dataclass(frozen=True)
class Recurrence:
    """One parsed schedule. Exactly one of `cron` and `every` is set."""

    spec: str
    cron: str | None = None
    every: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first due time strictly after `moment` (timezone-aware, UTC maths)."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        if self.every is not None:
            return moment + self.every
        assert self.cron is not None
        from croniter import croniter  # only schedules with a cron expression pay the import

        return croniter(self.cron, moment.astimezone(UTC)).get_next(datetime)


def parse_recurrence(spec: str, field: str = "interval") -> Recurrence:
    """Parses "<n> <unit>" (seconds, minutes, hours, days, weeks; short forms too) or a
    five-field cron expression. Raises ValidationError naming the field."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValidationError(field, "must be a cron expression or an interval like '24 hours'")
    text = spec.strip().lower()
    match = _INTERVAL.match(text)
    if match:
        count, unit = int(match.group(1)), match.group(2)
        if unit not in _UNITS:
            raise ValidationError(field, f"unknown unit {unit!r} in {spec!r}")
        if count * _UNITS[unit] > MAX_INTERVAL.total_seconds():
            raise ValidationError(field, f"{spec!r} is longer than {MAX_INTERVAL.days} days")
        every = timedelta(seconds=count * _UNITS[unit])
        if every < MIN_INTERVAL:
            raise ValidationError(field, f"{spec!r} is shorter than {MIN_INTERVAL}")
        return Recurrence(spec=spec, every=every)
    if len(text.split()) != 5:
        raise ValidationError(
            field, f"{spec!r} is neither an interval ('15 minutes') nor a 5-field cron expression"
        )
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValidationError(field, f"cron expression {spec!r} never fires") from None
    except (CroniterBadCronError, ValueError, KeyError, OverflowError) as exc:
        raise ValidationError(field, f"bad cron expression {spec!r}: {exc}") from None
    return Recurrence(spec=spec, cron=text)
