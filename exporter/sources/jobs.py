"""The jobs source: the `jobs` table that both engines write.

Gauges come from unfinished jobs only (the partial index jobs_unfinished_idx), and counters and
histograms grow by the jobs that finished since the previous poll, read through
jobs_finished_at_idx from a keyset cursor (finished_at, job_id). So a poll costs what the live
work costs, whatever the history.

A finished job is counted once its finish time is older than the *commit horizon*: now minus
JOBSIGHT_COMMIT_LAG, held further back by the oldest open write transaction in the database (up to
JOBSIGHT_MAX_COMMIT_LAG). A transaction that commits late therefore lands above the cursor, not
below it: counters neither miss nor double-count rows under concurrent commits. The cursor and
the totals travel in the snapshot, which the leader stores before serving it, so a new leader
continues exactly where the old one stopped.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar

from jobsight.labels import LabelCap
from jobsight.metric_spec import MetricSpec, histogram, samples
from jobsight.settings import SidecarSettings
from jobsight.sources.base import PollContext

LABELS = ("job_name", "runner")
BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
ZERO_UUID = "00000000-0000-0000-0000-000000000000"

JOBS = MetricSpec(
    "jobsight_jobs",
    "gauge",
    "Unfinished jobs in the jobs table, by job name, runner and status.",
    ("job_name", "runner", "status"),
)
COMPLETED = MetricSpec(
    "jobsight_jobs_completed_total", "counter", "Jobs that finished as completed.", LABELS
)
FAILED = MetricSpec(
    "jobsight_jobs_failed_total",
    "counter",
    "Jobs that finished as failed (after their last attempt).",
    LABELS,
)
CANCELLED = MetricSpec(
    "jobsight_jobs_cancelled_total", "counter", "Jobs that finished as cancelled.", LABELS
)
DURATION = MetricSpec(
    "jobsight_job_duration_seconds",
    "histogram",
    "Run time of finished jobs, first start to finish; exemplars carry the job's trace id.",
    LABELS,
)
WAIT = MetricSpec(
    "jobsight_job_wait_seconds",
    "histogram",
    "Time finished jobs waited from creation (or their run_at) to their first "
    "start; exemplars carry the job's trace id.",
    LABELS,
)
STUCK = MetricSpec(
    "jobsight_jobs_stuck", "gauge", "Jobs active for longer than JOBSIGHT_STUCK_AFTER.", LABELS
)
OLDEST_ACTIVE = MetricSpec(
    "jobsight_job_oldest_active_age_seconds",
    "gauge",
    "Age of the longest-running active job.",
    LABELS,
)
LAST_COMPLETION = MetricSpec(
    "jobsight_job_last_completion_timestamp_seconds",
    "gauge",
    "When a job of this name last completed (Unix time).",
    LABELS,
)
COUNTING_LAG = MetricSpec(
    "jobsight_jobs_counting_lag_seconds",
    "gauge",
    "How far behind now finished jobs are counted (the commit horizon).",
)

# The commit horizon; $1 commit lag, $2 max commit lag (seconds).
HORIZON = """
SELECT greatest(
         least(now(), coalesce((SELECT min(xact_start) FROM pg_stat_activity
                                WHERE datname = current_database() AND backend_xid IS NOT NULL
                                  AND pid <> pg_backend_pid()), now()))
           - $1 * interval '1 second',
         now() - $2 * interval '1 second') AS horizon,
       now() AS now
"""

# $1 cursor time, $2 horizon, $3 cursor job id, $4 limit.
FINISHED = """
SELECT job_id::text AS job_id, type AS job_name, runner_type AS runner, status::text AS status,
       extract(epoch FROM finished_at - started_at)::float8 AS run_s,
       extract(epoch FROM started_at - greatest(created_at::timestamptz,
                                                coalesce(run_at, created_at::timestamptz)))::float8
         AS wait_s,
       finished_at
FROM jobs
WHERE finished_at >= $1 AND finished_at < $2 AND (finished_at, job_id) > ($1, $3::uuid)
ORDER BY finished_at, job_id
LIMIT $4
"""

# The jobs finished in the last $1 seconds, per job name and per (job name, worker version); the
# finished_at index keeps it proportional to the window, not the history.
WINDOW = """
SELECT type AS job_name,
       CASE WHEN grouping(worker_version) = 1 THEN NULL ELSE coalesce(worker_version, '') END
         AS version,
       count(*) AS finished, count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
         FILTER (WHERE started_at IS NOT NULL AND status <> 'cancelled') AS p95,
       extract(epoch FROM max(finished_at) FILTER (WHERE status = 'completed'))::float8
         AS last_completed
FROM jobs
WHERE finished_at > now() - $1 * interval '1 second'
GROUP BY GROUPING SETS ((type), (type, worker_version))
"""

# $1 stuck after (seconds)
STUCK_BY_VERSION = """
SELECT coalesce(worker_version, '') AS version, count(*) AS stuck
FROM jobs
WHERE status IN ('processing', 'active') AND started_at < now() - $1 * interval '1 second'
GROUP BY 1
"""

# $1 stuck after (seconds).
UNFINISHED = """
SELECT type AS job_name, runner_type AS runner, status::text AS status, count(*) AS count,
       count(*) FILTER (WHERE status IN ('processing', 'active')
                          AND started_at < now() - $1 * interval '1 second') AS stuck,
       extract(epoch FROM now() - min(started_at)
                 FILTER (WHERE status IN ('processing', 'active')))::float8 AS oldest_active
FROM jobs
WHERE status IN ('pending', 'queued', 'processing', 'active')
GROUP BY 1, 2, 3
"""


@dataclass
class ExemplarRecord:
    trace_id: str
    value: float
    timestamp: float


@dataclass
class Hist:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0
    exemplars: list[ExemplarRecord | None] = field(
        default_factory=lambda: [None] * (len(BUCKETS) + 1)
    )

    def observe(self, value: float, exemplar: ExemplarRecord) -> None:
        index = next((i for i, bound in enumerate(BUCKETS) if value <= bound), len(BUCKETS))
        self.counts[index] += 1
        self.total += value
        self.exemplars[index] = exemplar


@dataclass
class SeriesTotals:
    job_name: str
    runner: str
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    duration: Hist = field(default_factory=Hist)
    wait: Hist = field(default_factory=Hist)
    last_completion: float | None = None


@dataclass
class FinishedCursor:
    finished_at: datetime
    job_id: str = ZERO_UUID


@dataclass
class UnfinishedRow:
    job_name: str
    runner: str
    status: str
    count: int
    stuck: int = 0
    oldest_active: float | None = None


@dataclass
class FinishedRow:
    job_id: str
    job_name: str
    runner: str
    status: str
    run_s: float | None
    wait_s: float | None
    finished_at: datetime


@dataclass
class WindowRow:
    """Jobs that finished within a window, per job name (version None) and per worker version."""

    job_name: str
    version: str | None
    finished: int
    failed: int
    completed: int
    p95: float | None  # run time, seconds
    last_completed: float | None  # Unix time


@dataclass
class WindowStats:
    seconds: float
    rows: list[WindowRow] = field(default_factory=list)


@dataclass
class JobsSnapshot:
    cursor: FinishedCursor
    unfinished: list[UnfinishedRow] = field(default_factory=list)
    totals: list[SeriesTotals] = field(default_factory=list)
    job_names: list[str] = field(default_factory=list)  # the label cap's admitted names
    counting_lag: float = 0.0
    newly_finished: int = 0  # in the poll that made this snapshot
    windows: list[WindowStats] = field(default_factory=list)  # for the rollback triggers
    stuck_by_version: dict[str, int] = field(default_factory=dict)

    def window(self, seconds: float) -> WindowStats | None:
        return next((w for w in self.windows if w.seconds == seconds), None)


def accumulate(
    previous: JobsSnapshot | None, rows: Sequence[FinishedRow], cursor: FinishedCursor, cap: int
) -> tuple[list[SeriesTotals], list[str], FinishedCursor]:
    """Adds newly finished rows to the previous totals; returns totals, admitted names, cursor."""
    names = LabelCap(cap, previous.job_names if previous else ())
    carried = copy.deepcopy(previous.totals) if previous else []  # never mutate the previous
    by_key = {(t.job_name, t.runner): t for t in carried}
    for row in rows:
        key = (names(row.job_name), row.runner)
        series = by_key.get(key) or by_key.setdefault(key, SeriesTotals(*key))
        stamp = row.finished_at.timestamp()
        trace_id = row.job_id.replace("-", "")
        if row.status == "completed":
            series.completed += 1
            series.last_completion = max(series.last_completion or 0.0, stamp)
        elif row.status == "failed":
            series.failed += 1
        elif row.status == "cancelled":
            series.cancelled += 1
        if row.run_s is not None and row.run_s >= 0 and row.status != "cancelled":
            series.duration.observe(row.run_s, ExemplarRecord(trace_id, row.run_s, stamp))
        if row.wait_s is not None and row.wait_s >= 0:
            series.wait.observe(row.wait_s, ExemplarRecord(trace_id, row.wait_s, stamp))
    if rows:
        cursor = FinishedCursor(rows[-1].finished_at, rows[-1].job_id)
    totals = sorted(by_key.values(), key=lambda t: (t.job_name, t.runner))
    return totals, names.admitted, cursor


def summarize_unfinished(rows: Iterable[UnfinishedRow], cap: LabelCap) -> list[UnfinishedRow]:
    """Folds names beyond the cap into 'other' (counts add up, the oldest age wins)."""
    merged: dict[tuple[str, str, str], UnfinishedRow] = {}
    for row in rows:
        key = (cap(row.job_name), row.runner, row.status)
        into = merged.get(key)
        if into is None:
            merged[key] = UnfinishedRow(
                key[0], row.runner, row.status, row.count, row.stuck, row.oldest_active
            )
            continue
        into.count += row.count
        into.stuck += row.stuck
        ages = [a for a in (into.oldest_active, row.oldest_active) if a is not None]
        into.oldest_active = max(ages) if ages else None
    return sorted(merged.values(), key=lambda r: (r.job_name, r.runner, r.status))


def build_snapshot(
    previous: JobsSnapshot | None,
    finished: Sequence[FinishedRow],
    unfinished: Iterable[UnfinishedRow],
    horizon: datetime,
    now: datetime,
    cap: int,
) -> JobsSnapshot:
    cursor = previous.cursor if previous else FinishedCursor(horizon)
    totals, names, cursor = accumulate(previous, finished, cursor, cap)
    label_cap = LabelCap(cap, names)
    rows = summarize_unfinished(unfinished, label_cap)
    return JobsSnapshot(
        cursor=cursor,
        unfinished=rows,
        totals=totals,
        job_names=label_cap.admitted,
        counting_lag=max(0.0, (now - horizon).total_seconds()),
        newly_finished=len(finished),
    )


async def commit_horizon(conn: Any, settings: SidecarSettings) -> tuple[datetime, datetime]:
    """(horizon, now): finished jobs older than the horizon can all be counted (see above)."""
    row = await conn.fetchrow(HORIZON, settings.commit_lag, settings.max_commit_lag)
    return row["horizon"], row["now"]


def trigger_windows(settings: SidecarSettings) -> list[float]:
    """The distinct look-back windows the rollback triggers need from this source."""
    triggers = settings.triggers
    stalled = triggers["stalled"]
    wanted = {
        triggers["error_rate"].window,
        triggers["latency_p95"].window,
        stalled_lookback(stalled.window, stalled.degraded),
    }
    return sorted(w for w in wanted if w)


def stalled_lookback(window: float | None, degraded: float) -> float:
    """How far back the stalled trigger looks for a completion: twice its threshold, at least."""
    return max(window or 0.0, 2 * degraded)


class JobsSource:
    name = "jobs"
    snapshot_type = JobsSnapshot
    metrics = (
        JOBS,
        COMPLETED,
        FAILED,
        CANCELLED,
        DURATION,
        WAIT,
        STUCK,
        OLDEST_ACTIVE,
        LAST_COMPLETION,
        COUNTING_LAG,
    )

    async def poll(self, ctx: PollContext) -> JobsSnapshot:
        settings = ctx.settings
        previous: JobsSnapshot | None = ctx.previous
        assert ctx.pool is not None
        async with ctx.pool.acquire() as conn:
            horizon, now = await commit_horizon(conn, settings)
            cursor = previous.cursor if previous else FinishedCursor(horizon)
            finished = [
                FinishedRow(**dict(r))
                for r in await conn.fetch(
                    FINISHED,
                    cursor.finished_at,
                    horizon,
                    cursor.job_id,
                    settings.max_finished_per_poll,
                )
            ]
            unfinished = [
                UnfinishedRow(**dict(r)) for r in await conn.fetch(UNFINISHED, settings.stuck_after)
            ]
            windows = [
                WindowStats(
                    seconds, [WindowRow(**dict(r)) for r in await conn.fetch(WINDOW, seconds)]
                )
                for seconds in trigger_windows(settings)
            ]
            stuck = {
                r["version"]: r["stuck"]
                for r in await conn.fetch(STUCK_BY_VERSION, settings.stuck_after)
            }
        snapshot = build_snapshot(
            previous, finished, unfinished, horizon, now, settings.max_job_names
        )
        snapshot.windows = windows
        snapshot.stuck_by_version = stuck
        return snapshot

    def render(self, snap: JobsSnapshot, settings: SidecarSettings) -> Iterable[Metric]:
        yield samples(JOBS, (((r.job_name, r.runner, r.status), r.count) for r in snap.unfinished))
        active = [r for r in snap.unfinished if r.status in ("processing", "active")]
        # Every series the sidecar knows gets a stuck count, zero included: "none stuck" is data.
        stuck = {(t.job_name, t.runner): 0 for t in snap.totals}
        for (name, runner), count in _per_series(active, lambda r: r.stuck, sum):
            stuck[(name, runner)] = count
        yield samples(STUCK, sorted(stuck.items()))
        aged = [r for r in active if r.oldest_active is not None]
        yield samples(OLDEST_ACTIVE, _per_series(aged, lambda r: r.oldest_active, max))
        totals = snap.totals
        yield samples(COMPLETED, (((t.job_name, t.runner), t.completed) for t in totals))
        yield samples(FAILED, (((t.job_name, t.runner), t.failed) for t in totals))
        yield samples(CANCELLED, (((t.job_name, t.runner), t.cancelled) for t in totals))
        yield histogram(DURATION, BUCKETS, (_hist_row(t, t.duration) for t in totals))
        yield histogram(WAIT, BUCKETS, (_hist_row(t, t.wait) for t in totals))
        yield samples(
            LAST_COMPLETION,
            (
                ((t.job_name, t.runner), t.last_completion)
                for t in totals
                if t.last_completion is not None
            ),
        )
        yield samples(COUNTING_LAG, [((), snap.counting_lag)])


def _per_series(rows: Iterable[UnfinishedRow], value: Any, combine: Any) -> list[tuple[Any, Any]]:
    grouped: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        grouped.setdefault((row.job_name, row.runner), []).append(value(row))
    return [(key, combine(values)) for key, values in sorted(grouped.items())]


def _hist_row(series: SeriesTotals, hist: Hist) -> tuple[Any, ...]:
    exemplars = [
        Exemplar({"trace_id": e.trace_id}, e.value, e.timestamp) if e else None
        for e in hist.exemplars
    ]
    return (series.job_name, series.runner), hist.counts, hist.total, exemplars


SOURCE = JobsSource()
