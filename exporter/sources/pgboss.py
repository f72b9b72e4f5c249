"""The pgboss source: read-only figures from the tables of a Node application's pg-boss.

The schema version (`<schema>.version`) and the columns present decide how to read:
- pg-boss 7.4 to 9 (schema 20): its camel-case columns and `expired` state are read through the
  legacy layout (sources/pgboss_layout.py); no queue table, no cached counters: counted live,
  like pg-boss 10, and finished jobs from the job and archive tables by a scan.
- pg-boss 10 (schema 24): no cached counters; waiting, active and failed jobs are counted live
  from the partitioned `job` table.
- pg-boss 11/12 (schema 25 and later): the counters pg-boss itself caches on `queue` at each
  monitor pass (the figures its own getQueue() returns), the wait / run latency bins where
  present, and crash restarts from the `instance` table where present. pg-boss 11 and 12.5
  cache no failed count: their failed jobs are counted from the job table.
Completed and failed counters, and the triggers' windows, come from the job table itself on
every release (sources/pgboss_finished.py), whatever the application's persistQueueStats.
Active jobs past their expiry are always counted live (few rows: active ones only).

The schema name is a validated identifier (JOBSIGHT_PGBOSS_SCHEMA); column names come from the
fixed lists below, never from the database or the user.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client.core import Metric

from jobsight.labels import LabelCap
from jobsight.metric_spec import MetricSpec, samples, single
from jobsight.settings import SidecarSettings
from jobsight.sources import pgboss_records, pgboss_schedules
from jobsight.sources.base import PollContext, RowSource, table_exists
from jobsight.sources.finished import commit_horizon
from jobsight.sources.pgboss_finished import (
    INDEXES_SQL,
    CountTiming,
    QueueFinished,
    count_args,
    count_due,
    from_rows,
    indexed_sql,
    scan_sql,
)
from jobsight.sources.pgboss_layout import BossLayout, LayoutError, layout, quoted
from jobsight.sources.pgboss_records import BlockedKeys, BossRecords, QueueStats
from jobsight.sources.pgboss_schedules import BossSchedule, earliest_owed, schedules_sql
from jobsight.sources.signals import (
    Finished,
    LatencyCandidate,
    Signals,
    SourceSignals,
    trigger_windows,
)
from jobsight.sources.status import UnsupportedSource

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

LATENCY_MIN_SECONDS = 0.01  # pg-boss's latency bins: slot k >= 1 starts at 0.01 * sqrt(2)^(k-1)
QUEUE = ("queue",)

JOBS = MetricSpec(
    "jobsight_pgboss_jobs",
    "gauge",
    "pg-boss jobs by queue and state: ready, deferred (start time not reached), "
    "blocked, active, failed (retained).",
    ("queue", "state"),
)
OLDEST_READY = MetricSpec(
    "jobsight_pgboss_oldest_ready_age_seconds",
    "gauge",
    "How long the oldest ready pg-boss job has waited.",
    QUEUE,
)
EXPIRED = MetricSpec(
    "jobsight_pgboss_expired_active_jobs", "gauge", "Active pg-boss jobs past their expiry.", QUEUE
)
COMPLETED = MetricSpec(
    "jobsight_pgboss_jobs_completed_total",
    "counter",
    "pg-boss jobs that finished as completed since the sidecar started counting, "
    "from pg-boss's job table.",
    QUEUE,
)
FAILED = MetricSpec(
    "jobsight_pgboss_jobs_failed_total",
    "counter",
    "pg-boss jobs that finished as failed (retries used up) since the sidecar started "
    "counting, from pg-boss's job table.",
    QUEUE,
)
WAIT_P95 = MetricSpec(
    "jobsight_pgboss_wait_p95_seconds",
    "gauge",
    "p95 wait time of the jobs in pg-boss's latest monitor window.",
    QUEUE,
)
RUN_P95 = MetricSpec(
    "jobsight_pgboss_run_p95_seconds",
    "gauge",
    "p95 run time of the jobs in pg-boss's latest monitor window.",
    QUEUE,
)
INSTANCES = MetricSpec(
    "jobsight_pgboss_instances_alive",
    "gauge",
    "pg-boss instances heartbeating (pg-boss versions with an instance table).",
)
CRASH_RESTARTS = MetricSpec(
    "jobsight_pgboss_crash_restarts", "gauge", "Crash restarts recorded by live pg-boss instances."
)
SCHEMA_VERSION = MetricSpec(
    "jobsight_pgboss_schema_version", "gauge", "Schema version found in <schema>.version."
)

CACHED_COLUMNS = (
    "deferred_count",
    "queued_count",
    "ready_count",
    "blocked_count",
    "active_count",
    "failed_count",
    "ready_oldest_seconds",
    "wait_bins",
    "run_bins",
)


class PgBossError(UnsupportedSource):
    """A pg-boss schema this source does not read."""


@dataclass
class BossQueueRow:
    queue: str
    ready: int = 0
    deferred: int = 0
    blocked: int = 0
    active: int = 0
    failed: int | None = 0  # None: not known (no cached count, and no count of the table yet)
    oldest_ready: float | None = None
    expired: int = 0
    stuck: int = 0  # active longer than JOBSIGHT_STUCK_AFTER

    @property
    def queued(self) -> int:
        """Waiting jobs, as pg-boss counts them (queuedCount / getQueueSize)."""
        return self.ready + self.deferred + self.blocked


@dataclass
class BossTotals:
    queue: str
    completed: int = 0
    failed: int = 0


@dataclass
class BossLatency:
    queue: str
    wait_p95: float | None
    run_p95: float | None
    run_sample: int = 0  # jobs in pg-boss's run-time histogram behind run_p95


@dataclass
class PgBossSnapshot:
    present: bool = True
    schema_version: int | None = None
    counting: str = "live"  # live (pg-boss 10) or cached (pg-boss's monitor counters)
    queues: list[BossQueueRow] = field(default_factory=list)
    totals: list[BossTotals] = field(default_factory=list)
    latency: list[BossLatency] = field(default_factory=list)
    instances_alive: int | None = None
    crash_restarts: int | None = None
    last_completion: float | None = None  # the latest completion seen in the job table, kept
    cursor: datetime | None = None  # jobs finished before it are in the totals
    counted: CountTiming | None = None  # the latest count of the job table
    finished: list[QueueFinished] = field(default_factory=list)  # from that count
    schedules: list[BossSchedule] = field(default_factory=list)  # and when pg-boss checked them
    records: BossRecords = field(default_factory=BossRecords)  # blocked keys, warnings (12)


def percentile(bins: Sequence[int | None] | None, p: float) -> float | None:
    """pg-boss's estimate of the p-th percentile (1-100) of a latency histogram, in seconds.
    Empty slots are stored as NULL; they count as zero, as in pg-boss's own reader."""
    counts = [int(n or 0) for n in bins] if bins else []
    if sum(counts) == 0:
        return None
    target = p / 100 * sum(counts)
    k, seen = 0, 0
    while k < len(counts) - 1 and not (counts[k] > 0 and seen + counts[k] >= target):
        seen += counts[k]
        k += 1
    if k == 0:
        return LATENCY_MIN_SECONDS
    low = LATENCY_MIN_SECONDS * math.sqrt(2) ** (k - 1)
    if k == len(counts) - 1:
        return low
    return float(low * math.sqrt(2) ** ((target - seen) / counts[k]))


def add_counts(
    previous: Iterable[BossTotals], counted: Iterable[QueueFinished]
) -> list[BossTotals]:
    """The totals plus the jobs one count found finished since the cursor. Pure."""
    totals = {t.queue: t for t in copy.deepcopy(list(previous))}
    for queue in counted:
        into = totals.setdefault(queue.queue, BossTotals(queue.queue))
        into.completed += queue.completed
        into.failed += queue.failed
    return sorted(totals.values(), key=lambda t: t.queue)


def fold_queues(rows: Iterable[BossQueueRow], cap: int) -> list[BossQueueRow]:
    names = LabelCap(cap)
    merged: dict[str, BossQueueRow] = {}
    for row in sorted(rows, key=lambda r: r.queue):
        name = names(row.queue)
        into = merged.setdefault(name, BossQueueRow(name))
        for attr in ("ready", "deferred", "blocked", "active", "expired", "stuck"):
            setattr(into, attr, getattr(into, attr) + getattr(row, attr))
        if into.failed is not None and row.failed is not None:
            into.failed += row.failed
        else:
            into.failed = None  # one part unknown: the sum is unknown, not a smaller number
        ages = [a for a in (into.oldest_ready, row.oldest_ready) if a is not None]
        into.oldest_ready = max(ages) if ages else None
    return list(merged.values())


def live_counts_sql(tables: BossLayout) -> str:
    """Every queue pg-boss knows (an empty one reads 0) and any job name without a queue row."""
    return f"""
SELECT coalesce(j.name, q.name) AS queue,
       count(j.name) FILTER (WHERE state < 'active' AND start_after <= now()) AS ready,
       count(j.name) FILTER (WHERE state < 'active' AND start_after > now()) AS deferred,
       count(j.name) FILTER (WHERE state = 'active') AS active,
       count(j.name) FILTER (WHERE state = 'failed') AS failed,
       extract(epoch FROM now() - min(start_after)
                 FILTER (WHERE state < 'active' AND start_after <= now()))::float8 AS oldest_ready
FROM {tables.job} j
FULL JOIN {tables.queue} q ON q.name = j.name
GROUP BY 1
"""  # noqa: S608 - identifier validated


def cached_counts_sql(schema: str, columns: set[str]) -> str:
    chosen = [f"{c}" if c in columns else f"NULL AS {c}" for c in CACHED_COLUMNS]
    return f"SELECT name AS queue, {', '.join(chosen)} FROM {quoted(schema)}.queue"  # noqa: S608


def active_sql(tables: BossLayout, job_columns: set[str]) -> str:
    """Active jobs past their expiry, and active longer than $1 seconds (stuck)."""
    expiry = (
        "expire_seconds * interval '1 second'" if "expire_seconds" in job_columns else "expire_in"
    )
    return f"""
SELECT name AS queue, count(*) FILTER (WHERE started_on + {expiry} < now()) AS expired,
       count(*) FILTER (WHERE started_on < now() - $1 * interval '1 second') AS stuck
FROM {tables.job} j
WHERE state = 'active'
GROUP BY 1
"""  # noqa: S608 - identifier validated, expiry from a fixed pair


def instances_sql(schema: str) -> str:
    return f"""
SELECT count(*) AS alive, coalesce(sum(crash_restarts), 0)::int AS crash_restarts
FROM {quoted(schema)}.instance
WHERE stopped_on IS NULL AND heartbeat_on > now() - 3 * heartbeat_seconds * interval '1 second'
"""  # noqa: S608 - identifier validated


COLUMNS_SQL = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = $1
  AND table_name IN ('queue', 'job', 'instance', 'archive', 'schedule', 'version', 'warning',
                     'queue_stats')
"""


@dataclass
class FinishedCount:
    """One count of the job table: the jobs finished in [cursor, horizon), and the windows."""

    cursor: datetime
    horizon: datetime
    queues: list[QueueFinished]
    timing: CountTiming


@dataclass
class PgBossRows:
    present: bool
    version: int | None = None
    active: dict[str, tuple[int, int]] = field(default_factory=dict)  # queue -> expired, stuck
    instances: tuple[int, int] | None = None  # alive, crash restarts (pg-boss >= 11)
    cached: list[dict[str, Any]] | None = None  # pg-boss >= 11: its per-queue counters
    live: list[BossQueueRow] = field(default_factory=list)  # pg-boss 10: counted from the jobs
    count: FinishedCount | None = None  # None: not due this poll (see pgboss_finished)
    schedules: list[BossSchedule] = field(default_factory=list)
    records: BossRecords = field(default_factory=BossRecords)


async def count_finished(
    conn: Any, ctx: PollContext[PgBossSnapshot], columns: dict[str, set[str]], tables: BossLayout
) -> FinishedCount | None:
    """Counts the job table when due: through the completion index where there is one."""
    settings, previous = ctx.settings, ctx.previous
    started = time.time()
    if not count_due(previous.counted if previous else None, started, settings.pgboss_scan_share):
        return None
    schema = settings.pgboss_schema
    horizon, _ = await commit_horizon(conn, settings)
    if previous is not None and not previous.present:
        cursor = EPOCH  # the schema came after the previous poll: every job in it is new
    else:
        cursor = previous.cursor if previous and previous.cursor else horizon
    windows = trigger_windows(settings)
    latency_window = settings.triggers["latency_p95"].window or max(windows, default=300.0)
    # pg-boss 10 counts failed jobs live; later 12s cache them; 11 and 12.5 need them counted.
    cached = columns.get("queue", set())
    count_failed = "queued_count" in cached and "failed_count" not in cached
    indexed = False
    try:
        indexes = await conn.fetchrow(INDEXES_SQL, f"{quoted(schema)}.job")
        indexed = bool(indexes["finished"] and (indexes["failed"] or not count_failed))
        query = indexed_sql(tables, windows, count_failed) if indexed else scan_sql(tables, windows)
        rows = await conn.fetch(query, *count_args(cursor, horizon, latency_window, windows))
    except asyncpg.QueryCanceledError:
        took = time.time() - started
        log.warning(
            "counting pg-boss's finished jobs in %s.job took over %.1f s and was cancelled; "
            "the pgboss counters and windows wait for a count that fits (see docs/pgboss.md: "
            "two indexes on the job table, or a longer JOBSIGHT_STATEMENT_TIMEOUT)",
            schema,
            took,
        )
        return FinishedCount(cursor, cursor, [], CountTiming(started, took, indexed, ok=False))
    return FinishedCount(
        cursor,
        horizon,
        from_rows([dict(r) for r in rows], windows),
        CountTiming(started, time.time() - started, indexed),
    )


async def read_records(
    conn: asyncpg.Connection, schema: str, columns: dict[str, set[str]], recent_window: float
) -> BossRecords:
    """Blocked keys where a queue uses key_strict_fifo (only then: elsewhere no index serves
    the count), persisted warnings and stored queue statistics where their tables exist."""
    records = BossRecords()
    if "policy" in columns.get("queue", set()) and await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {quoted(schema)}.queue WHERE policy = 'key_strict_fifo')"  # noqa: S608
    ):
        found = await conn.fetch(pgboss_records.blocked_sql(schema))
        records.blocked = [BlockedKeys(**r) for r in found]
    if "type" in columns.get("warning", set()):
        found = await conn.fetch(pgboss_records.warnings_sql(schema), recent_window)
        records.warnings = {r["type"]: r["count"] for r in found}
    stats = columns.get("queue_stats", set())
    if "captured_on" in stats:
        found = await conn.fetch(pgboss_records.stats_sql(schema, stats))
        records.stats = [QueueStats(**r) for r in found]
    return records


class PgBossSource(RowSource[PgBossRows, PgBossSnapshot]):
    name = "pgboss"
    snapshot_type = PgBossSnapshot
    metrics = (
        JOBS,
        OLDEST_READY,
        EXPIRED,
        COMPLETED,
        FAILED,
        WAIT_P95,
        RUN_P95,
        INSTANCES,
        CRASH_RESTARTS,
        SCHEMA_VERSION,
        *pgboss_schedules.METRICS,
        *pgboss_records.METRICS,
    )

    async def fetch(self, ctx: PollContext[PgBossSnapshot]) -> PgBossRows:
        schema = ctx.settings.pgboss_schema
        async with ctx.require_pool().acquire() as conn:
            if not await table_exists(conn, f"{quoted(schema)}.version"):
                return PgBossRows(present=False)
            version = await conn.fetchval(f"SELECT max(version) FROM {quoted(schema)}.version")  # noqa: S608
            columns: dict[str, set[str]] = {}
            for row in await conn.fetch(COLUMNS_SQL, schema):
                columns.setdefault(row["table_name"], set()).add(row["column_name"])
            try:
                tables = layout(schema, version, columns)
            except LayoutError as exc:
                raise PgBossError(str(exc)) from None
            active = await conn.fetch(
                active_sql(tables, columns.get("job", set())), ctx.settings.stuck_after
            )
            rows = PgBossRows(
                True, version, {r["queue"]: (r["expired"], r["stuck"]) for r in active}
            )
            if {"crash_restarts", "heartbeat_on"} <= columns.get("instance", set()):
                instances = await conn.fetchrow(instances_sql(schema))
                rows.instances = (instances["alive"], instances["crash_restarts"])
            if "queued_count" in columns.get("queue", set()):
                cached = await conn.fetch(cached_counts_sql(schema, columns["queue"]))
                rows.cached = [dict(r) for r in cached]
            else:
                live = await conn.fetch(live_counts_sql(tables))
                rows.live = [BossQueueRow(**r) for r in live]
            rows.count = await count_finished(conn, ctx, columns, tables)
            if "cron" in columns.get("schedule", set()) and "cron_on" in columns.get(
                "version", set()
            ):
                found = await conn.fetch(schedules_sql(schema, columns["schedule"]))
                rows.schedules = [BossSchedule(**r) for r in found]
            rows.records = await read_records(conn, schema, columns, ctx.settings.recent_window)
        return rows

    def build(
        self, rows: PgBossRows, previous: PgBossSnapshot | None, settings: SidecarSettings
    ) -> PgBossSnapshot:
        if not rows.present or rows.version is None:
            return PgBossSnapshot(present=False)
        if rows.cached is not None:
            snap = from_cached(rows.cached, rows.active, rows.instances, rows.version)
        else:
            live = [replace(row, expired=0, stuck=0) for row in rows.live]
            for row in live:
                row.expired, row.stuck = rows.active.get(row.queue, (0, 0))
            alive, crashes = rows.instances if rows.instances else (None, None)
            snap = PgBossSnapshot(
                True, rows.version, "live", live, instances_alive=alive, crash_restarts=crashes
            )
        with_counts(snap, rows.count, previous if previous and previous.present else None)
        snap.queues = fold_queues(snap.queues, settings.max_job_names)
        snap.schedules = rows.schedules
        snap.records = rows.records
        return snap

    def signals(self, snap: PgBossSnapshot, settings: SidecarSettings) -> SourceSignals:
        """Ready, stuck and crashes; and, from the latest count of the job table, the jobs
        finished in each window, run-time p95s (with the jobs behind them), the last completion."""
        queues = snap.queues
        overall = Signals(
            ready=sum(q.ready for q in queues),
            crashes=snap.crash_restarts or 0,
            stuck=sum(q.stuck for q in queues),
            schedule_due=earliest_owed(snap.schedules),
            stall_notes=tuple(filter(None, [pgboss_records.explain(snap.records)])),
        )
        if snap.counted is None or not snap.counted.ok:  # no count: no evidence either way
            return SourceSignals(overall)
        latency = [
            LatencyCandidate(q.queue, q.run_p95, q.run_sample)
            for q in snap.finished
            if q.run_p95 is not None
        ]
        for window in trigger_windows(settings):
            overall.finished[window] = sum(
                (q.window(window) for q in snap.finished), start=Finished()
            )
            overall.latency[window] = list(latency)
            if snap.last_completion is not None:  # kept across counts without a completion
                overall.last_completion[window] = snap.last_completion
        return SourceSignals(overall)

    def render(self, snap: PgBossSnapshot, settings: SidecarSettings) -> Iterable[Metric]:
        states = ("ready", "deferred", "blocked", "active", "failed")
        yield samples(
            JOBS,
            (
                ((q.queue, s), getattr(q, s))
                for q in snap.queues
                for s in states
                if getattr(q, s) is not None
            ),
        )
        yield samples(
            OLDEST_READY,
            (((q.queue,), q.oldest_ready) for q in snap.queues if q.oldest_ready is not None),
        )
        yield samples(EXPIRED, (((q.queue,), q.expired) for q in snap.queues))
        # Totals are kept per queue; rendered within the cap.
        names = LabelCap(settings.max_job_names, [q.queue for q in snap.queues])
        completed: dict[str, int] = {}
        failed: dict[str, int] = {}
        for t in snap.totals:
            name = names(t.queue)
            completed[name] = completed.get(name, 0) + t.completed
            failed[name] = failed.get(name, 0) + t.failed
        yield samples(COMPLETED, (((q,), n) for q, n in sorted(completed.items())))
        yield samples(FAILED, (((q,), n) for q, n in sorted(failed.items())))
        capped = [x for x in snap.latency if names(x.queue) == x.queue]  # p95s do not add up
        yield samples(
            WAIT_P95, (((x.queue,), x.wait_p95) for x in capped if x.wait_p95 is not None)
        )
        yield samples(RUN_P95, (((x.queue,), x.run_p95) for x in capped if x.run_p95 is not None))
        yield single(INSTANCES, snap.instances_alive)
        yield single(CRASH_RESTARTS, snap.crash_restarts)
        yield single(SCHEMA_VERSION, snap.schema_version)
        if snap.present:
            yield from pgboss_schedules.render(snap.schedules, settings.max_job_names)
            yield from pgboss_records.render(snap.records, settings.max_job_names)


def with_counts(
    snap: PgBossSnapshot, count: FinishedCount | None, previous: PgBossSnapshot | None
) -> None:
    """Carries the counters, cursor and windows over from the previous snapshot and adds the
    latest count (None: none was due). Failed jobs a count found (every scan does; an indexed
    count where pg-boss caches none) replace pg-boss's cached failed count, which is as of its
    last monitor pass, or missing before late pg-boss 12.
    Fills `snap` in place; the inputs are not changed."""
    if previous is not None:
        snap.totals = copy.deepcopy(previous.totals)
        snap.cursor, snap.counted = previous.cursor, previous.counted
        snap.finished = copy.deepcopy(previous.finished)
        snap.last_completion = previous.last_completion
    if count is not None and not count.timing.ok:  # no evidence; the cursor stays put
        snap.counted, snap.finished = count.timing, []
    elif count is not None:
        # A sidecar's first count has an empty range (the cursor starts at the horizon), so its
        # counters start at 0, as counters do; a schema newer than the previous poll is all new.
        snap.totals = add_counts(snap.totals, count.queues)
        snap.cursor, snap.counted, snap.finished = count.horizon, count.timing, count.queues
        stamps = [q.last_completion for q in count.queues if q.last_completion is not None]
        if snap.last_completion is not None:
            stamps.append(snap.last_completion)
        snap.last_completion = max(stamps, default=None)
    retained = {q.queue: q.failed_retained for q in snap.finished}
    for row in snap.queues:  # a count of the table is current; pg-boss's cache, of its monitor
        counted = retained.get(row.queue)
        row.failed = counted if counted is not None else row.failed


def from_cached(
    rows: list[dict[str, Any]],
    active: dict[str, tuple[int, int]],
    instances: tuple[int, int] | None,
    version: int,
) -> PgBossSnapshot:
    """pg-boss >= 11: its cached per-queue counters -> a snapshot (before folding). Pure.
    A counter the release does not cache is None, to be counted from the job table."""
    queues = []
    latency = []
    for row in rows:
        queued = row["queued_count"] or 0
        deferred = row["deferred_count"] or 0
        blocked = row["blocked_count"] or 0
        ready = (
            row["ready_count"] if row["ready_count"] is not None else (queued - deferred - blocked)
        )
        queues.append(
            BossQueueRow(
                row["queue"],
                ready,
                deferred,
                blocked,
                row["active_count"] or 0,
                row["failed_count"],
                row["ready_oldest_seconds"],
                *active.get(row["queue"], (0, 0)),
            )
        )
        if row["wait_bins"] is not None or row["run_bins"] is not None:
            latency.append(
                BossLatency(
                    row["queue"],
                    percentile(row["wait_bins"], 95),
                    percentile(row["run_bins"], 95),
                    sum(int(n or 0) for n in row["run_bins"] or ()),
                )
            )
    return PgBossSnapshot(
        True,
        version,
        "cached",
        queues,
        latency=latency,
        instances_alive=instances[0] if instances else None,
        crash_restarts=instances[1] if instances else None,
    )


SOURCE = PgBossSource()
