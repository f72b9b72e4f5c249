"""Temporal Schedules, read by the temporal source once a minute (a schedule changes on the
scale of its spec, and each one costs a describe): per schedule, the job name it fires (from the
workflow id the Temporal engine gives its action, `jobsight-<job name>-schedule-<id>`), its next
fire, its last fire, the fires Temporal skipped for being due outside the catch-up window, and
whether the last run it started failed.

The fire a schedule owes (for the schedule_missed trigger), from what Temporal says, never from
guessing its spec: a next fire that Temporal still lists as upcoming although it is already past
(its scheduler is behind), or a fire that Temporal skipped (the overlap policy, SKIP by default,
skips while the previous run still runs; or outside the catch-up window) when no fire was made
since. A skip is seen as its counter growing between two reads, and the fire it skipped is the
first one after the earlier read (Temporal's next fire then); while fires go on being skipped, it
stays owed until a run starts after it, so a hung run behind a schedule is found. A skip after a
run that started within the same minute is not pinned to a time: the next read pins the next
one."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

from prometheus_client.core import Metric

from jobsight.labels import LabelCap
from jobsight.metric_spec import MetricSpec, samples
from jobsight.runners.warn_once import warn_once
from jobsight.sources.temporal_api import Answer, NotAddressable, NotFound, TemporalApi
from jobsight.sources.temporal_json import seconds_of, unix_of

log = logging.getLogger(__name__)

READ_EVERY_S = 60.0
MAX_SCHEDULES = 100
FAILED_STATUSES = {"FAILED", "TIMED_OUT", "TERMINATED", "CANCELED"}
_ACTION_ID = re.compile(r"^jobsight-(?P<name>.+)-schedule-[0-9a-f-]{36}$")

SCHEDULE = ("schedule",)
NEXT_DUE = MetricSpec(
    "jobsight_temporal_schedule_next_due_timestamp_seconds",
    "gauge",
    "When a Temporal Schedule fires next (Unix time).",
    SCHEDULE,
)
LAST_FIRE = MetricSpec(
    "jobsight_temporal_schedule_last_fire_timestamp_seconds",
    "gauge",
    "When a Temporal Schedule last started its workflow (Unix time); absent before its first.",
    SCHEDULE,
)
MISSED = MetricSpec(
    "jobsight_temporal_schedule_missed_fires",
    "gauge",
    "Fires a Temporal Schedule skipped since it was created, for being due outside its catch-up "
    "window (the server, or the schedule, was away).",
    SCHEDULE,
)
LAST_RUN_FAILED = MetricSpec(
    "jobsight_temporal_schedule_last_run_failed",
    "gauge",
    "1 when the last run a Temporal Schedule started failed (failed, timed out, terminated or "
    "cancelled), 0 when it completed; absent while it runs or before the first.",
    SCHEDULE,
)
METRICS = (NEXT_DUE, LAST_FIRE, MISSED, LAST_RUN_FAILED)


@dataclass(frozen=True)
class ScheduleState:
    schedule_id: str
    job_name: str  # the job name it fires, or the schedule id when it is not jobsight's
    spec: str
    next_due: float | None
    last_fire: float | None
    last_workflow: str
    missed: int
    paused: bool
    last_failed: bool | None
    skipped: int = 0  # fires skipped by the overlap policy since the schedule was created
    owed: float | None = None  # the earliest fire not made (Unix time), see the module's text


@dataclass
class ScheduleRead:
    """What one read found, and when (Unix time): kept between reads."""

    read_at: float
    schedules: list[ScheduleState]


class Timed(Protocol):
    read_at: float  # Unix time


def read_due(previous: Timed | None, now: float) -> bool:
    """Whether a once-a-minute read (the schedules; the temporal source's closed count) is due."""
    return previous is None or now - previous.read_at >= READ_EVERY_S


def job_name_of(workflow_id: str, schedule_id: str) -> str:
    found = _ACTION_ID.match(workflow_id)
    return found.group("name") if found else schedule_id


async def read(api: TemporalApi, rpc_timeout: float) -> list[ScheduleState]:
    """Every schedule (up to MAX_SCHEDULES) but those deleted since they were listed, and those
    the HTTP API cannot address (an id with a `/`: left out, and said once)."""
    ids = await api.schedule_ids(MAX_SCHEDULES, rpc_timeout)
    described = await asyncio.gather(*(_describe(api, i, rpc_timeout) for i in ids))
    found = [state for state in described if state is not None]
    return sorted(found, key=lambda s: (s.job_name, s.schedule_id))


async def _describe(api: TemporalApi, schedule_id: str, rpc_timeout: float) -> ScheduleState | None:
    try:
        described = await api.describe_schedule(schedule_id, rpc_timeout)
    except NotFound:
        return None  # deleted since it was listed
    except NotAddressable as exc:
        message = f"schedule left out: {exc}; read Temporal over gRPC to include it"
        warn_once(log, message, "temporal source: %s", message)
        return None
    last = last_action(described)
    status = None
    if last is not None:
        started = last.get("startWorkflowResult", {})
        try:
            workflow = await api.describe_workflow(
                str(started.get("workflowId", "")), str(started.get("runId", "")), rpc_timeout
            )
            status = workflow.get("workflowExecutionInfo", {}).get("status")
        except (NotFound, NotAddressable):
            status = None  # its last run is not known: whether it failed is not exported
    return schedule_state(schedule_id, described, status)


def last_action(described: Answer) -> Answer | None:
    recent = described.get("info", {}).get("recentActions") or []
    return recent[-1] if recent else None


def schedule_state(schedule_id: str, described: Answer, last_status: str | None) -> ScheduleState:
    """A DescribeSchedule answer (JSON mapping), with the status of the last run it started.
    Pure."""
    info, schedule = described.get("info", {}), described.get("schedule", {})
    action_id = str(schedule.get("action", {}).get("startWorkflow", {}).get("workflowId", ""))
    last = last_action(described)
    name = str(last_status or "").removeprefix("WORKFLOW_EXECUTION_STATUS_")
    last_failed = True if name in FAILED_STATUSES else False if name == "COMPLETED" else None
    upcoming = [t for t in map(unix_of, info.get("futureActionTimes") or []) if t is not None]
    return ScheduleState(
        schedule_id=schedule_id,
        job_name=job_name_of(action_id, schedule_id),
        spec=describe_spec(schedule.get("spec")),
        next_due=upcoming[0] if upcoming else None,
        last_fire=unix_of(last.get("actualTime")) if last else None,
        last_workflow=str((last or {}).get("startWorkflowResult", {}).get("workflowId", "")),
        missed=int(info.get("missedCatchupWindow") or 0),
        paused=bool(schedule.get("state", {}).get("paused")),
        last_failed=last_failed if last else None,
        skipped=int(info.get("overlapSkipped") or 0),
    )


def with_owed(
    found: Iterable[ScheduleState], previous: ScheduleRead | None, read_at: float
) -> list[ScheduleState]:
    """`found` (read at `read_at`) with the fire each schedule owes, given the previous read.
    Pure."""
    before = {s.schedule_id: s for s in previous.schedules} if previous else {}
    return [replace(s, owed=owed_fire(s, before.get(s.schedule_id), read_at)) for s in found]


def owed_fire(now: ScheduleState, then: ScheduleState | None, read_at: float) -> float | None:
    if now.paused:
        return None
    if now.next_due is not None and now.next_due < read_at:
        return now.next_due  # Temporal's scheduler has not made a fire it lists as due
    if then is None:
        return None
    last = now.last_fire if now.last_fire is not None else float("-inf")
    if then.owed is not None and last < then.owed:
        return then.owed  # still no run since the fire it owes
    skipped = now.skipped + now.missed > then.skipped + then.missed
    if skipped and then.next_due is not None and last < then.next_due:
        return then.next_due
    return None


def earliest_owed(schedules: Iterable[ScheduleState]) -> tuple[float, str] | None:
    owed = ((s.owed, s.job_name) for s in schedules if s.owed is not None)
    return min(owed, default=None)


# A structured calendar's fields in cron's order, and each one's whole range (cron's `*`).
CALENDAR_FIELDS = {
    "minute": (0, 59),
    "hour": (0, 23),
    "dayOfMonth": (1, 31),
    "month": (1, 12),
    "dayOfWeek": (0, 6),
}


def describe_spec(spec: Answer | None) -> str:
    """A schedule's spec as an operator reads it: cron-like calendars, intervals. Pure."""
    if not spec:
        return ""
    parts = [str(c) for c in spec.get("cronString", [])]
    for calendar in spec.get("structuredCalendar", []):
        fields = CALENDAR_FIELDS.items()
        parts.append(" ".join(_ranges(calendar.get(f, ()), whole) for f, whole in fields))
    parts += [f"every {timedelta(seconds=seconds_of(i.get('interval')))}"
              for i in spec.get("interval", [])]  # fmt: skip
    return ", ".join(parts)


def _ranges(ranges: Iterable[Answer], whole: tuple[int, int]) -> str:
    """A calendar field's ranges in cron's words (`*` for every value); in the JSON mapping a
    range's zero start, end or step is left out, an end below the start means the start, a step
    of 0 means 1."""
    words = []
    for r in ranges:
        start, end, step = (int(r.get(key) or 0) for key in ("start", "end", "step"))
        end = max(start, end)
        if (start, end) == whole and step <= 1:
            return "*"
        text = str(start) if end == start else f"{start}-{end}"
        words.append(text + (f"/{step}" if step > 1 else ""))
    return ",".join(words) or "*"


def render(schedules: Iterable[ScheduleState], cap: int) -> Iterable[Metric]:
    """Per job name under the label cap (several schedules of one name: the soonest next fire,
    the latest last fire, the missed fires summed, the last run of the latest fire)."""
    names = LabelCap(cap)
    due: dict[str, float] = {}
    fired: dict[str, tuple[float, bool | None]] = {}
    missed: dict[str, float] = {}
    for s in schedules:
        name = names(s.job_name)
        if s.next_due is not None and not s.paused:
            due[name] = min(due.get(name, s.next_due), s.next_due)
        if s.last_fire is not None and s.last_fire >= fired.get(name, (0.0, None))[0]:
            fired[name] = (s.last_fire, s.last_failed)
        missed[name] = missed.get(name, 0) + s.missed
    yield samples(NEXT_DUE, (((n,), v) for n, v in sorted(due.items())))
    yield samples(LAST_FIRE, (((n,), v[0]) for n, v in sorted(fired.items())))
    yield samples(MISSED, (((n,), v) for n, v in sorted(missed.items())))
    yield samples(
        LAST_RUN_FAILED,
        (((n,), float(v[1])) for n, v in sorted(fired.items()) if v[1] is not None),
    )
