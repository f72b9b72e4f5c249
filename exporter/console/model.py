"""What each console page shows, built from rows and snapshots. Pure: no I/O, no HTML."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from jobsight.console.queries import BUCKET_S, OVERVIEW_S, BucketRow, FailedAttempt
from jobsight.sources.jobs import JobsSnapshot
from jobsight.sources.pgboss import PgBossSnapshot
from jobsight.sources.pgqueue import PgQueueSnapshot, QueueRow
from jobsight.sources.status import SourceView
from jobsight.sources.temporal import TemporalSnapshot

BUCKETS = OVERVIEW_S // BUCKET_S


@dataclass
class Release:
    runner: str
    version: str
    finished: int
    failed: int


@dataclass
class JobNameHour:
    """One job name over the last hour, and its 5-minute buckets (oldest first)."""

    job_name: str
    finished: int = 0
    failed: int = 0
    run_p95: float | None = None
    wait_p95: float | None = None
    finished_series: list[float | None] = field(default_factory=lambda: [0.0] * BUCKETS)
    failure_series: list[float | None] = field(default_factory=lambda: [None] * BUCKETS)
    run_series: list[float | None] = field(default_factory=lambda: [None] * BUCKETS)
    wait_series: list[float | None] = field(default_factory=lambda: [None] * BUCKETS)
    releases: list[Release] = field(default_factory=list)

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None


def job_name_hours(rows: Iterable[BucketRow], now: float) -> list[JobNameHour]:
    """Per job name, the hour's totals, its charts and its runner/version breakdown."""
    newest = int(now // BUCKET_S)
    names: dict[str, JobNameHour] = {}
    for row in rows:
        hour = names.setdefault(row.job_name, JobNameHour(row.job_name))
        if row.by_release:
            hour.releases.append(
                Release(row.runner or "", row.version or "", row.finished, row.failed)
            )
        elif row.bucket is None:
            hour.finished, hour.failed = row.finished, row.failed
            hour.run_p95, hour.wait_p95 = row.run_p95, row.wait_p95
        elif 0 <= (index := BUCKETS - 1 - (newest - row.bucket)) < BUCKETS:
            hour.finished_series[index] = float(row.finished)
            hour.failure_series[index] = row.failed / row.finished if row.finished else None
            hour.run_series[index] = row.run_p95
            hour.wait_series[index] = row.wait_p95
    for hour in names.values():
        hour.releases.sort(key=lambda r: (-r.finished, r.runner, r.version))
    return sorted(names.values(), key=lambda h: (-h.failed, -h.finished, h.job_name))


@dataclass
class FailureGroup:
    """Failed attempts with one error fingerprint."""

    fingerprint: str
    key: str  # a short stable id of the fingerprint, for its URL
    count: int = 0
    job_names: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None
    series: list[float | None] = field(default_factory=list)
    attempts: list[FailedAttempt] = field(default_factory=list)  # newest first
    example: str = ""  # one error text as written


def group_key(fingerprint: str) -> str:
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:12]


def failure_groups(
    attempts: Sequence[FailedAttempt], now: float, window: float, buckets: int = 24
) -> list[FailureGroup]:
    """Failed attempts (newest first) grouped by fingerprint, largest group first, each with its
    counts per bucket of the window (oldest first)."""
    width = window / buckets
    groups: dict[str, FailureGroup] = {}
    for attempt in attempts:
        text = attempt.fingerprint
        group = groups.get(text)
        if group is None:
            group = groups[text] = FailureGroup(text, group_key(text), series=[0.0] * buckets)
            group.example, group.last = attempt.error, attempt.finished_at
        group.count += 1
        group.job_names[attempt.job_name] = group.job_names.get(attempt.job_name, 0) + 1
        group.versions[attempt.version] = group.versions.get(attempt.version, 0) + 1
        group.first = attempt.finished_at
        group.attempts.append(attempt)
        age = now - attempt.finished_at.timestamp()
        if 0 <= age < window:
            index = buckets - 1 - int(age // width)
            group.series[index] = (group.series[index] or 0.0) + 1
    return sorted(groups.values(), key=lambda g: (-g.count, g.fingerprint))


def top(counts: dict[str, int], n: int = 5) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


@dataclass
class QueueLine:
    """One queue of any engine, as the queues page shows it side by side."""

    engine: str  # pgqueue, pg-boss, temporal
    name: str
    waiting: int | None = None  # ready to run now
    later: int | None = None  # deferred, retrying, blocked
    active: int | None = None
    oldest_ready: float | None = None  # seconds
    workers: str = ""  # workers or pollers, as the engine counts them
    finished: int | None = None  # in the recent window
    failed: int | None = None  # in the recent window
    note: str = ""  # what else holds its work back (pg-boss: keys failed jobs hold)
    stats_age: float | None = None  # pg-boss: seconds since it last stored the queue's statistics
    created_rate: float | None = None  # pg-boss: jobs created per second in those statistics


def queue_lines(
    views: Mapping[str, SourceView], now: float | None = None
) -> tuple[list[QueueLine], float | None]:
    """Every engine's queues from the sources' latest snapshots (no query of their own), and
    the window the recent counts cover."""
    lines: list[QueueLine] = []
    jobs_snap = _snapshot(views, "jobs", JobsSnapshot)
    windows = jobs_snap.windows if jobs_snap else []
    recent = min(windows, key=lambda w: w.seconds) if windows else None
    by_name = {r.job_name: r for r in recent.rows if r.version is None} if recent else {}
    queue = _snapshot(views, "pgqueue", PgQueueSnapshot)
    if queue and queue.present:
        depth: dict[str, dict[str, QueueRow]] = defaultdict(dict)
        for row in queue.queues:
            depth[row.queue][row.state] = row
        for name in sorted(depth):
            states = depth[name]
            done = by_name.get(name)
            lines.append(QueueLine(
                "pgqueue", name,
                waiting=sum(r.ready for r in states.values() if r.state != "active"),
                later=sum(r.count - r.ready for r in states.values() if r.state != "active"),
                active=states["active"].count if "active" in states else 0,
                oldest_ready=max((r.oldest_ready or 0.0 for r in states.values()), default=None),
                workers=f"{queue.workers_alive} alive (all queues)",
                finished=done.finished if done else 0, failed=done.failed if done else 0,
            ))  # fmt: skip
    boss = _snapshot(views, "pgboss", PgBossSnapshot)
    if boss and boss.present:
        finished = {f.queue: f for f in boss.finished}
        held = {b.queue: b for b in boss.records.blocked or [] if b.keys}
        stats = {x.queue: x for x in boss.records.stats or []}
        at = time.time() if now is None else now
        for q in sorted(boss.queues, key=lambda q: q.queue):
            counted = finished.get(q.queue)
            counts = counted.windows if counted else []
            window = min(counts, key=lambda w: w.seconds) if counts else None
            alive = boss.instances_alive
            lines.append(QueueLine(
                "pg-boss", q.queue, waiting=q.ready, later=q.deferred + q.blocked, active=q.active,
                oldest_ready=q.oldest_ready,
                workers="" if alive is None else f"{alive} instances alive",
                finished=window.finished if window else None,
                failed=window.failed if window else None,
                note=(f"{held[q.queue].keys} keys held by failed jobs, "
                      f"{held[q.queue].behind} jobs behind them") if q.queue in held else "",
                stats_age=at - stats[q.queue].captured_on if q.queue in stats else None,
                created_rate=stats[q.queue].created_per_second if q.queue in stats else None,
            ))  # fmt: skip
    temporal = _snapshot(views, "temporal", TemporalSnapshot)
    if temporal:
        for t in sorted(temporal.task_queues, key=lambda t: t.task_queue):
            lines.append(QueueLine(
                "temporal", t.task_queue, waiting=t.backlog, oldest_ready=t.backlog_age,
                workers=f"{t.workflow_pollers} workflow, {t.activity_pollers} activity pollers",
            ))  # fmt: skip
    return lines, recent.seconds if recent else None


S = TypeVar("S")


def _snapshot(views: Mapping[str, SourceView], name: str, kind: type[S]) -> S | None:
    view = views.get(name)
    return view.snapshot if view is not None and isinstance(view.snapshot, kind) else None


def boss_warnings(views: Mapping[str, SourceView]) -> dict[str, int] | None:
    """pg-boss's persisted warnings by kind over the recent window (None: not recorded)."""
    boss = _snapshot(views, "pgboss", PgBossSnapshot)
    return boss.records.warnings if boss and boss.present else None
