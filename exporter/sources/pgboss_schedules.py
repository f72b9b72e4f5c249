"""pg-boss's schedules: did they fire? pg-boss keeps no per-schedule record of its last fire; it
stamps `version.cron_on` each time its cron monitor checks the schedules (every 30 s by default)
and sends every fire due by then. So the fire a schedule still owes is the first one of its cron
(in its time zone) after that stamp: while pg-boss runs, it is in the future or a few seconds
past; past due by more than the schedule_missed trigger's grace, no pg-boss instance is checking.
Cron schedules only: pg-boss 12's rrule schedules are listed, not judged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prometheus_client.core import Metric

from jobsight.labels import LabelCap
from jobsight.metric_spec import MetricSpec, samples, single
from jobsight.sources.pgboss_layout import quoted

SCHEDULE = ("schedule",)
NEXT_DUE = MetricSpec(
    "jobsight_pgboss_schedule_next_due_timestamp_seconds",
    "gauge",
    "The first fire of a pg-boss schedule after pg-boss last checked its schedules (Unix time): "
    "in the past while no instance checks (the schedule_missed trigger).",
    SCHEDULE,
)
CRON_CHECKED = MetricSpec(
    "jobsight_pgboss_cron_checked_timestamp_seconds",
    "gauge",
    "When a pg-boss instance last checked the schedules (version.cron_on, Unix time).",
)
METRICS = (NEXT_DUE, CRON_CHECKED)
MAX_SCHEDULES = 1000


def schedules_sql(schema: str, columns: set[str]) -> str:
    kind = "s.kind" if "kind" in columns else "'cron'"
    return f"""
SELECT s.name, {kind} AS kind, s.cron, coalesce(s.timezone, 'UTC') AS timezone,
       extract(epoch FROM s.created_on)::float8 AS created_on,
       (SELECT extract(epoch FROM max(cron_on))::float8 FROM {quoted(schema)}.version) AS cron_on
FROM {quoted(schema)}.schedule s
ORDER BY s.name
LIMIT {MAX_SCHEDULES}
"""  # noqa: S608 - a validated identifier and constants


@dataclass(frozen=True)
class BossSchedule:
    name: str
    kind: str
    cron: str
    timezone: str
    created_on: float
    cron_on: float | None


def owed_fire(s: BossSchedule) -> float | None:
    """The first fire after pg-boss last checked (or after the schedule was created, if it never
    has): Unix time; None for rrule schedules and crons or zones pg-boss would not take either."""
    if s.kind != "cron":
        return None
    from croniter import croniter  # loaded only where pg-boss has cron schedules

    try:
        zone = ZoneInfo(s.timezone)
        start = datetime.fromtimestamp(max(s.cron_on or 0.0, s.created_on), zone)
        return float(croniter(s.cron, start).get_next(float))
    except (ZoneInfoNotFoundError, ValueError, KeyError):
        return None


def render(schedules: Iterable[BossSchedule], cap: int) -> Iterable[Metric]:
    names = LabelCap(cap)
    due: dict[str, float] = {}
    checked = None
    for s in schedules:
        checked = s.cron_on
        owed = owed_fire(s)
        if owed is not None:
            name = names(s.name)
            due[name] = min(due.get(name, owed), owed)
    yield samples(NEXT_DUE, (((n,), v) for n, v in sorted(due.items())))
    yield single(CRON_CHECKED, checked)


def earliest_owed(schedules: Iterable[BossSchedule]) -> tuple[float, str] | None:
    owed = ((f, s.name) for s in schedules if (f := owed_fire(s)) is not None)
    return min(owed, default=None)
