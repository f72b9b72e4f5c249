"""The jobs source: the `jobs` table that both engines write.

Gauges come from unfinished jobs only (the partial index jobs_unfinished_idx), and counters and
histograms grow by the jobs that finished since the previous poll, read from a keyset cursor
behind the commit horizon (sources/finished.py). So a poll costs what the live work costs,
whatever the history. The cursor and the totals travel in the snapshot, which the leader stores
before serving it, so a new leader continues exactly where the old one stopped.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar

from jobsight.labels import LabelCap
from jobsight.metric_spec import DURATION_BUCKETS, MetricSpec, histogram, samples
from jobsight.settings import SidecarSettings
from jobsight.sources import breakers
from jobsight.sources.base import PollContext, RowSource
from jobsight.sources.breakers import BreakerRow
from jobsight.sources.finished import (
    COUNTING,
    COUNTING_TRACED,
    FinishedCursor,
    commit_horizon,
    read_finished,
)
from jobsight.sources.signals import (
    Finished,
    LatencyCandidate,
    Signals,
    SourceSignals,
    trigger_windows,
)
from jobsight.sources.versions import (
    MAX_VERSIONS,
    Fingerprint,
    StuckRow,
    VersionCounts,
    VersionSlice,
    read_due,
    read_versions,
)

log = logging.getLogger(__name__)

LABELS = ("job_name", "runner")
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
VERSION_JOBS = MetricSpec(
    "jobsight_version_jobs",
    "gauge",
    "Jobs finished within JOBSIGHT_CANARY_WINDOW by worker version (the few busiest): "
    "finished, failed, timed (with a run time), slow (above the job name's p95 over the window, "
    "pooled over versions): canary against stable.",
    ("version", "outcome"),
)
OUTCOMES = ("finished", "failed", "timed", "slow")

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

TRACE_COLUMN = """
SELECT EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_name = 'jobs' AND column_name = 'trace_context'
                 AND table_schema = current_schema())
"""

# The statuses the runners write while a job waits and runs: a known series reads 0 in each.
ZERO_STATUSES = ("queued", "processing")

# Since when a running job has run: its started_at, or for rows written before jobsight's
# migration (no started_at) the last change of the row, else its creation: never "not at all".
ACTIVE_SINCE = "coalesce(started_at, updated_at::timestamptz, created_at::timestamptz)"

# $1 stuck after (seconds)
STUCK_BY_VERSION = f"""
SELECT coalesce(worker_version, '') AS version, type AS job_name, count(*) AS stuck
FROM jobs
WHERE status IN ('processing', 'active') AND {ACTIVE_SINCE} < now() - $1 * interval '1 second'
GROUP BY 1, 2
"""  # noqa: S608 - a constant expression

# $1 stuck after (seconds).
UNFINISHED = f"""
SELECT type AS job_name, runner_type AS runner, status::text AS status, count(*) AS count,
       count(*) FILTER (WHERE status IN ('processing', 'active')
                          AND {ACTIVE_SINCE} < now() - $1 * interval '1 second') AS stuck,
       extract(epoch FROM now() - min({ACTIVE_SINCE})
                 FILTER (WHERE status IN ('processing', 'active')))::float8 AS oldest_active
FROM jobs
WHERE status IN ('pending', 'queued', 'processing', 'active')
GROUP BY 1, 2, 3
"""  # noqa: S608 - a constant expression


@dataclass
class ExemplarRecord:
    trace_id: str
    value: float
    timestamp: float


@dataclass
class Hist:
    counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0
    exemplars: list[ExemplarRecord | None] = field(
        default_factory=lambda: [None] * (len(DURATION_BUCKETS) + 1)
    )

    def observe(self, value: float, exemplar: ExemplarRecord) -> None:
        index = next(
            (i for i, bound in enumerate(DURATION_BUCKETS) if value <= bound), len(DURATION_BUCKETS)
        )
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
    trace_id: str | None = None  # the trace it was scheduled in (else its job id's)


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
    stuck: list[StuckRow] = field(default_factory=list)  # per worker version and job name
    versions: VersionCounts | None = None  # the canary analysis's counts, and when read
    breakers: list[BreakerRow] = field(default_factory=list)  # the runners' circuit breakers

    @property
    def stuck_by_version(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for row in self.stuck:
            totals[row.version] = totals.get(row.version, 0) + row.stuck
        return totals

    @property
    def version_slices(self) -> list[VersionSlice]:
        return self.versions.slices if self.versions else []

    @property
    def fingerprints(self) -> list[Fingerprint]:
        return self.versions.fingerprints if self.versions else []

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
        trace_id = row.trace_id or row.job_id.replace("-", "")
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


@dataclass
class JobsRows:
    """What one poll reads; `finished` are the jobs finished since the previous cursor."""

    horizon: datetime
    now: datetime
    finished: list[FinishedRow]
    unfinished: list[UnfinishedRow]
    windows: list[WindowStats]
    stuck: list[StuckRow]
    versions: VersionCounts | None = None
    breakers: list[BreakerRow] = field(default_factory=list)


class JobsSource(RowSource[JobsRows, JobsSnapshot]):
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
        VERSION_JOBS,
        breakers.BREAKERS,
        breakers.FALLBACKS,
    )

    async def fetch(self, ctx: PollContext[JobsSnapshot]) -> JobsRows:
        settings = ctx.settings
        async with ctx.require_pool().acquire() as conn:
            horizon, now = await commit_horizon(conn, settings)
            cursor = ctx.previous.cursor if ctx.previous else FinishedCursor(horizon)
            traced = ctx.clients.get("jobs.trace_context")
            if traced is None:  # asked once: a column migration 0008 adds
                traced = ctx.clients["jobs.trace_context"] = bool(await conn.fetchval(TRACE_COLUMN))
            finished = await read_finished(
                conn, COUNTING_TRACED if traced else COUNTING, cursor, horizon,
                settings.max_finished_per_poll,
            )  # fmt: skip
            unfinished = await conn.fetch(UNFINISHED, settings.stuck_after)
            windows = [
                WindowStats(seconds, [WindowRow(**r) for r in await conn.fetch(WINDOW, seconds)])
                for seconds in trigger_windows(settings)
            ]
            stuck = await conn.fetch(STUCK_BY_VERSION, settings.stuck_after)
            versions = await self._versions(conn, ctx, settings)
            breaker_rows = await breakers.read_breakers(conn)
        return JobsRows(
            horizon,
            now,
            [FinishedRow(**r) for r in finished],
            [UnfinishedRow(**r) for r in unfinished],
            windows,
            [StuckRow(**r) for r in stuck],
            versions,
            breaker_rows,
        )

    @staticmethod
    async def _versions(
        conn: asyncpg.Connection, ctx: PollContext[JobsSnapshot], settings: SidecarSettings
    ) -> VersionCounts | None:
        """The canary analysis's counts: read once per slice at most. A read cut short by
        statement_timeout (a very busy window) keeps the previous counts and is logged; it never
        takes the jobs source down with it."""
        previous = ctx.previous.versions if ctx.previous else None
        now = time.time()
        if not read_due(previous, now):
            return previous
        try:
            slices, prints = await read_versions(conn, settings.canary_window)
        except asyncpg.QueryCanceledError:
            log.warning(
                "counting jobs by worker version over JOBSIGHT_CANARY_WINDOW (%.0f s) ran out of "
                "time; the canary analysis keeps its previous counts (shorten the window)",
                settings.canary_window,
            )
            return previous
        return VersionCounts(now, slices, prints)

    def build(
        self, rows: JobsRows, previous: JobsSnapshot | None, settings: SidecarSettings
    ) -> JobsSnapshot:
        snapshot = build_snapshot(
            previous, rows.finished, rows.unfinished, rows.horizon, rows.now, settings.max_job_names
        )
        snapshot.windows = rows.windows
        snapshot.stuck = rows.stuck
        snapshot.versions = rows.versions
        snapshot.breakers = rows.breakers
        return snapshot

    def render(self, snap: JobsSnapshot, settings: SidecarSettings) -> Iterable[Metric]:
        # A known series reads 0 waiting and running when it has none, rather than vanishing.
        unfinished: dict[tuple[str, str, str], float] = {
            (t.job_name, t.runner, status): 0 for t in snap.totals for status in ZERO_STATUSES
        }
        for r in snap.unfinished:
            unfinished[(r.job_name, r.runner, r.status)] = r.count
        yield samples(JOBS, sorted(unfinished.items()))
        active = [r for r in snap.unfinished if r.status in ("processing", "active")]
        # Every series the sidecar knows gets a stuck count, zero included: "none stuck" is data.
        stuck: dict[tuple[str, str], float] = {(t.job_name, t.runner): 0 for t in snap.totals}
        for (name, runner), count in _per_series(active, lambda r: r.stuck, sum):
            stuck[(name, runner)] = count
        yield samples(STUCK, sorted(stuck.items()))
        aged = [r for r in active if r.oldest_active is not None]
        yield samples(OLDEST_ACTIVE, _per_series(aged, lambda r: r.oldest_active or 0.0, max))
        totals = snap.totals
        yield samples(COMPLETED, (((t.job_name, t.runner), t.completed) for t in totals))
        yield samples(FAILED, (((t.job_name, t.runner), t.failed) for t in totals))
        yield samples(CANCELLED, (((t.job_name, t.runner), t.cancelled) for t in totals))
        yield histogram(DURATION, DURATION_BUCKETS, (_hist_row(t, t.duration) for t in totals))
        yield histogram(WAIT, DURATION_BUCKETS, (_hist_row(t, t.wait) for t in totals))
        yield samples(
            LAST_COMPLETION,
            (
                ((t.job_name, t.runner), t.last_completion)
                for t in totals
                if t.last_completion is not None
            ),
        )
        yield samples(COUNTING_LAG, [((), snap.counting_lag)])
        yield samples(VERSION_JOBS, version_totals(snap.version_slices))
        yield from breakers.render(snap.breakers)

    def signals(self, snap: JobsSnapshot, settings: SidecarSettings) -> SourceSignals:
        """Finished counts, p95s and last completions per window, overall (version None rows)
        and per worker version; stuck jobs overall and per version."""
        overall = Signals(stuck=sum(r.stuck for r in snap.unfinished))
        by_version: dict[str, Signals] = {}
        for window in snap.windows:
            for row in window.rows:
                scope = (
                    overall
                    if row.version is None
                    else by_version.setdefault(row.version, Signals())
                )
                _add_window_row(scope, window.seconds, row)
        for version, count in snap.stuck_by_version.items():
            by_version.setdefault(version, Signals()).stuck = count
        return SourceSignals(overall, by_version)


def version_totals(rows: Iterable[VersionSlice]) -> list[tuple[tuple[str, str], float]]:
    """Per worker version (already bounded by the query), each outcome summed over the window."""
    names = LabelCap(MAX_VERSIONS)
    totals: dict[tuple[str, str], float] = {}
    for row in sorted(rows, key=lambda r: (r.version, r.job_name, r.slice)):
        version = names(row.version)
        for outcome in OUTCOMES:
            key = (version, outcome)
            totals[key] = totals.get(key, 0) + getattr(row, outcome)
    return sorted(totals.items())


def _add_window_row(into: Signals, seconds: float, row: WindowRow) -> None:
    into.finished[seconds] = into.finished.get(seconds, Finished()) + Finished(
        row.finished, row.failed
    )
    if row.p95 is not None:
        candidate = LatencyCandidate(row.job_name, row.p95, row.finished)
        into.latency.setdefault(seconds, []).append(candidate)
    if row.last_completed is not None:
        into.last_completion[seconds] = max(
            into.last_completion.get(seconds, 0.0), row.last_completed
        )


def _per_series(
    rows: Iterable[UnfinishedRow],
    value: Callable[[UnfinishedRow], float],
    combine: Callable[[list[float]], float],
) -> list[tuple[tuple[str, str], float]]:
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
