"""The temporal source: Temporal's visibility and task-queue APIs, for the namespace and the task
queues in scope (TEMPORAL_NAMESPACE, JOBSIGHT_TEMPORAL_TASK_QUEUES).

- workflows running now (`ExecutionStatus = "Running"`, served by the visibility store's status
  index at every poll), and workflows closed within JOBSIGHT_RECENT_WINDOW by their closing
  status (`CloseTime > ... AND ExecutionStatus != "Running" GROUP BY ExecutionStatus`; without
  the status bound, server 1.29 counts running workflows as closed), never a count over all
  history. The closed count is read at most once a minute and kept between reads: a close-time
  bound is index-served by Elasticsearch and SQL advanced visibility, but the dev server's SQLite
  scans every closed workflow for it (about 1 us each), so the polls in between cost what the
  running work costs, whatever the history (bench/poll_cost.py, 100 to 25,000 closed workflows);
- per task queue: backlog count and age and poller counts (`DescribeTaskQueue` with report_stats;
  servers that ignore it are asked again in the enhanced mode, summing over build versions);
- workflows running longer than JOBSIGHT_TEMPORAL_LONG_RUNNING_AFTER.

It reads Temporal over gRPC with the SDK or over the HTTP API without it (temporal_api.py);
temporalio is imported only for gRPC, and only when this source is enabled.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import Metric

from jobsight.metric_spec import MetricSpec, samples, single
from jobsight.runners.temporal_access import TemporalAccess
from jobsight.settings import SidecarSettings
from jobsight.sources import temporal_api, temporal_schedules
from jobsight.sources.base import PollContext, RowSource
from jobsight.sources.signals import Signals, SourceSignals
from jobsight.sources.temporal_api import ACTIVITY_TASKS, WORKFLOW_TASKS, Answer, TemporalApi
from jobsight.sources.temporal_json import payload_value, seconds_of

TQ = ("task_queue",)
WORKFLOWS = MetricSpec(
    "jobsight_temporal_workflows",
    "gauge",
    "Workflows in scope running now (status running), and closed within JOBSIGHT_RECENT_WINDOW "
    "by their closing status (visibility counts; the closed ones counted once a minute).",
    ("status",),
)
BACKLOG = MetricSpec(
    "jobsight_temporal_task_queue_backlog",
    "gauge",
    "Approximate tasks waiting in a task queue (workflow + activity).",
    TQ,
)
BACKLOG_AGE = MetricSpec(
    "jobsight_temporal_task_queue_backlog_age_seconds",
    "gauge",
    "Age of the oldest task waiting in a task queue.",
    TQ,
)
POLLERS = MetricSpec(
    "jobsight_temporal_task_queue_pollers",
    "gauge",
    "Workers polling a task queue, by task type (workflow, activity).",
    ("task_queue", "task_type"),
)
LONG_RUNNING = MetricSpec(
    "jobsight_temporal_long_running_workflows",
    "gauge",
    "Workflows running longer than JOBSIGHT_TEMPORAL_LONG_RUNNING_AFTER.",
)
RECENT_CLOSED = MetricSpec(
    "jobsight_temporal_recent_closed_workflows",
    "gauge",
    "Workflows that failed or timed out within JOBSIGHT_RECENT_WINDOW, by status.",
    ("status",),
)

_TASK_QUEUE = re.compile(r"^[A-Za-z0-9_.:/@-]{1,200}$")


class TemporalSourceError(Exception):
    pass


@dataclass
class TaskQueueRow:
    task_queue: str
    backlog: int = 0
    backlog_age: float = 0.0
    workflow_pollers: int = 0
    activity_pollers: int = 0


@dataclass
class ClosedRead:
    """Workflows closed within the recent window, by status (raw groups), and when counted."""

    read_at: float
    groups: list[tuple[str | None, int]]


@dataclass
class TemporalSnapshot:
    workflows: dict[str, int] = field(default_factory=dict)  # status -> count
    task_queues: list[TaskQueueRow] = field(default_factory=list)
    long_running: int = 0
    recent_closed: dict[str, int] = field(default_factory=dict)
    closed: ClosedRead | None = None  # read at most once a minute, kept
    schedules: temporal_schedules.ScheduleRead | None = None  # read once a minute, kept


def status_label(value: Any) -> str:
    """'Running' / 'TimedOut' / 'ContinuedAsNew' -> running / timed_out / continued_as_new."""
    text = str(value).strip('"')
    return re.sub(r"(?<!^)(?=[A-Z])", "_", text).lower()


def scope_query(task_queues: Iterable[str]) -> str:
    queues = list(task_queues)
    for name in queues:
        if not _TASK_QUEUE.match(name):
            raise TemporalSourceError(f"JOBSIGHT_TEMPORAL_TASK_QUEUES: bad task queue {name!r}")
    if not queues:
        return ""
    return "TaskQueue IN (" + ", ".join(f'"{name}"' for name in queues) + ")"


def closed_query(scope: str, closed_after: str) -> str:
    """Workflows closed after a time, by status. The status bound is needed: older releases'
    SQL visibility keeps a far-future close time on running workflows (server 1.29 counts them
    here; 1.32 does not)."""
    bounds = _and(scope, f'CloseTime > "{closed_after}"', 'ExecutionStatus != "Running"')
    return bounds + " GROUP BY ExecutionStatus"


def _and(*parts: str) -> str:
    return " AND ".join(part for part in parts if part)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def count_workflows(
    api: TemporalApi, query: str, rpc_timeout: float
) -> tuple[int, list[tuple[str | None, int]]]:
    """One CountWorkflowExecutions call, not retried (the SDK's own count_workflows retries an
    unreachable server until its timeout, so a poll during a short outage would wait it out and
    report the source up throughout): the total, and its groups when the query groups."""
    answer = await api.count(query, rpc_timeout)
    return int(answer.get("count") or 0), raw_groups(answer)


def raw_groups(answer: Answer) -> list[tuple[str | None, int]]:
    """A grouped count's groups (each value a payload) as (group value, count) rows."""
    return [
        (_group_value(g.get("groupValues")), int(g.get("count") or 0))
        for g in answer.get("groups", [])
    ]


def _group_value(values: Any) -> str | None:
    value = payload_value(values[0]) if values else None
    return None if value is None else str(value)


def grouped_counts(rows: Iterable[tuple[str | None, int]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value, count in rows:
        label = status_label(value) if value is not None else "unknown"
        counts[label] = counts.get(label, 0) + count
    return counts


@dataclass
class TemporalRows:
    running: int
    long_running: int
    closed: ClosedRead
    task_queues: list[TaskQueueRow]
    schedules: temporal_schedules.ScheduleRead | None = None


class TemporalSource(RowSource[TemporalRows, TemporalSnapshot]):
    name = "temporal"
    snapshot_type = TemporalSnapshot
    metrics = (
        WORKFLOWS,
        BACKLOG,
        BACKLOG_AGE,
        POLLERS,
        LONG_RUNNING,
        RECENT_CLOSED,
        *temporal_schedules.METRICS,
    )

    async def fetch(self, ctx: PollContext[TemporalSnapshot]) -> TemporalRows:
        settings = ctx.settings
        api: TemporalApi | None = ctx.clients.get("temporal")
        if api is None:
            api = await connect(settings)
            ctx.clients["temporal"] = api
        wait = settings.poll_timeout
        scope = scope_query(settings.temporal_task_queues)
        now = datetime.now(UTC)
        running, _ = await count_workflows(api, _and(scope, 'ExecutionStatus = "Running"'), wait)
        started_before = _iso(now - timedelta(seconds=settings.long_running_after))
        long_running, _ = await count_workflows(
            api, _and(scope, 'ExecutionStatus = "Running"', f'StartTime < "{started_before}"'),
            wait,
        )  # fmt: skip
        closed = ctx.previous.closed if ctx.previous else None
        if closed is None or temporal_schedules.read_due(closed, time.time()):
            closed_after = _iso(now - timedelta(seconds=settings.recent_window))
            _, groups = await count_workflows(api, closed_query(scope, closed_after), wait)
            closed = ClosedRead(time.time(), groups)
        queues = [await describe_task_queue(api, q, wait) for q in settings.temporal_task_queues]
        previous = ctx.previous.schedules if ctx.previous else None
        schedules = previous
        if temporal_schedules.read_due(previous, time.time()):
            read = await temporal_schedules.read(api, wait)
            at = time.time()
            schedules = temporal_schedules.ScheduleRead(
                at, temporal_schedules.with_owed(read, previous, at)
            )
        return TemporalRows(running, long_running, closed, queues, schedules)

    def build(
        self, rows: TemporalRows, previous: TemporalSnapshot | None, settings: SidecarSettings
    ) -> TemporalSnapshot:
        closed = grouped_counts(rows.closed.groups)
        failures = {s: n for s, n in closed.items() if s in ("failed", "timed_out")}
        return TemporalSnapshot(
            {"running": rows.running, **closed},
            rows.task_queues,
            rows.long_running,
            {"failed": 0, "timed_out": 0, **failures},  # 0 is an answer
            schedules=rows.schedules,
            closed=rows.closed,
        )

    def signals(self, snap: TemporalSnapshot, settings: SidecarSettings) -> SourceSignals:
        found = snap.schedules.schedules if snap.schedules else []
        return SourceSignals(
            Signals(
                ready=sum(q.backlog for q in snap.task_queues),
                schedule_due=temporal_schedules.earliest_owed(found),
            )
        )

    def render(self, snap: TemporalSnapshot, settings: SidecarSettings) -> Iterable[Metric]:
        yield samples(WORKFLOWS, (((status,), n) for status, n in sorted(snap.workflows.items())))
        yield samples(BACKLOG, (((q.task_queue,), q.backlog) for q in snap.task_queues))
        yield samples(BACKLOG_AGE, (((q.task_queue,), q.backlog_age) for q in snap.task_queues))
        yield samples(
            POLLERS,
            [
                row
                for q in snap.task_queues
                for row in (
                    ((q.task_queue, "workflow"), q.workflow_pollers),
                    ((q.task_queue, "activity"), q.activity_pollers),
                )
            ],
        )
        yield single(LONG_RUNNING, snap.long_running)
        yield samples(
            RECENT_CLOSED, (((status,), n) for status, n in sorted(snap.recent_closed.items()))
        )
        if snap.schedules is not None:
            yield from temporal_schedules.render(snap.schedules.schedules, settings.max_job_names)


def access(settings: SidecarSettings) -> TemporalAccess:
    """The sidecar's TLS and API key settings, as the runners take them (same names)."""
    return TemporalAccess(
        tls=settings.temporal_tls,
        tls_ca=settings.temporal_tls_ca,
        tls_cert=settings.temporal_tls_cert,
        tls_key=settings.temporal_tls_key,
        tls_server_name=settings.temporal_tls_server_name,
        api_key=settings.temporal_api_key,
    )


async def connect(settings: SidecarSettings) -> TemporalApi:
    """The HTTP API at JOBSIGHT_TEMPORAL_HTTP_ADDRESS when it is set, else the SDK's gRPC client
    at TEMPORAL_ADDRESS (temporal_api.py)."""
    return await temporal_api.connect(
        settings.temporal_address,
        settings.temporal_http_address,
        settings.temporal_namespace,
        access(settings),
        settings.poll_timeout,
    )


async def describe_task_queue(api: TemporalApi, name: str, rpc_timeout: float) -> TaskQueueRow:
    """Backlog and pollers of both task types; servers that ignore report_stats outside the
    enhanced mode are asked again in it, summing over build versions."""
    row = TaskQueueRow(name)
    kinds = ((WORKFLOW_TASKS, "workflow_pollers"), (ACTIVITY_TASKS, "activity_pollers"))
    for kind, pollers_attr in kinds:
        answer = await api.describe_task_queue(name, kind, False, rpc_timeout)
        found = [answer] if "stats" in answer else []
        if not found:
            enhanced = await api.describe_task_queue(name, kind, True, rpc_timeout)
            found = [
                info
                for version in enhanced.get("versionsInfo", {}).values()
                for info in version.get("typesInfo", {}).values()
            ]
        for info in found:
            _add_stats(row, info.get("stats", {}))
            setattr(row, pollers_attr, getattr(row, pollers_attr) + len(info.get("pollers", [])))
    return row


def _add_stats(row: TaskQueueRow, stats: Answer) -> None:
    row.backlog += int(stats.get("approximateBacklogCount") or 0)
    row.backlog_age = max(row.backlog_age, seconds_of(stats.get("approximateBacklogAge")))


SOURCE = TemporalSource()
