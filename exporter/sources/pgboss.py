"""The pgboss source: read-only figures from the tables of a Node application's pg-boss.

The schema version (`<schema>.version`) and the columns present decide how to read:
- pg-boss 10 (schema 24): no cached counters; waiting, active and failed jobs are counted live
  from the partitioned `job` table (`archive` holds completed jobs and is left alone).
- pg-boss 11/12 (schema 25 and later): the counters pg-boss itself caches on `queue` at each
  monitor pass (the figures its own getQueue() returns), the per-window completed / failed deltas
  (accumulated here into counters, each window once), the wait / run latency bins where present,
  and crash restarts from the `instance` table where present.
Active jobs past their expiry are always counted live (few rows: active ones only).

The schema name is a validated identifier (JOBSIGHT_PGBOSS_SCHEMA); column names come from the
fixed lists below, never from the database or the user.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client.core import Metric

from jobsight.labels import LabelCap
from jobsight.metric_spec import MetricSpec, samples, single
from jobsight.settings import SidecarSettings
from jobsight.sources.base import PollContext, RowSource, table_exists
from jobsight.sources.signals import (
    Finished,
    LatencyCandidate,
    Signals,
    SourceSignals,
    trigger_windows,
)
from jobsight.sources.status import UnsupportedSource

OLDEST_SUPPORTED = 24  # pg-boss 10
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
    "pg-boss jobs completed, from pg-boss's monitor deltas (pg-boss >= 11).",
    QUEUE,
)
FAILED = MetricSpec(
    "jobsight_pgboss_jobs_failed_total",
    "counter",
    "pg-boss jobs failed, from pg-boss's monitor deltas (pg-boss >= 11).",
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
    "completed_delta",
    "failed_delta",
    "delta_on",
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
    failed: int = 0
    oldest_ready: float | None = None
    expired: int = 0
    stuck: int = 0  # active longer than JOBSIGHT_STUCK_AFTER
    window_completed: int = 0  # in pg-boss's latest monitor window (pg-boss >= 11)
    window_failed: int = 0
    window_end: float | None = None  # Unix time the window ends

    @property
    def queued(self) -> int:
        """Waiting jobs, as pg-boss counts them (queuedCount / getQueueSize)."""
        return self.ready + self.deferred + self.blocked


@dataclass
class BossTotals:
    queue: str
    completed: int = 0
    failed: int = 0
    delta_on: str | None = None  # the monitor window last added


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
    last_completion: float | None = None  # the latest monitor window with a completion, kept


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


def add_deltas(
    previous: Iterable[BossTotals], rows: Iterable[dict[str, Any]], first_poll: bool
) -> list[BossTotals]:
    """Adds each queue's monitor window once (when its delta_on moves). At the sidecar's very
    first poll the windows already there are the baseline, not counted. Pure: returns new totals.
    pg-boss's windows are exact and contiguous, so nothing is missed as long as this source polls
    at least as often as pg-boss's monitor runs."""
    totals = {t.queue: t for t in copy.deepcopy(list(previous))}
    for row in rows:
        stamp = row.get("delta_on")
        stamp = stamp.isoformat() if stamp is not None else None
        known = totals.get(row["queue"])
        if known is None:
            known = totals[row["queue"]] = BossTotals(row["queue"])
            if first_poll:
                known.delta_on = stamp
                continue
        if stamp is not None and stamp != known.delta_on:
            known.completed += row.get("completed_delta") or 0
            known.failed += row.get("failed_delta") or 0
            known.delta_on = stamp
    return sorted(totals.values(), key=lambda t: t.queue)


def fold_queues(rows: Iterable[BossQueueRow], cap: int) -> list[BossQueueRow]:
    names = LabelCap(cap)
    merged: dict[str, BossQueueRow] = {}
    for row in sorted(rows, key=lambda r: r.queue):
        name = names(row.queue)
        into = merged.setdefault(name, BossQueueRow(name))
        for attr in (
            "ready",
            "deferred",
            "blocked",
            "active",
            "failed",
            "expired",
            "stuck",
            "window_completed",
            "window_failed",
        ):
            setattr(into, attr, getattr(into, attr) + getattr(row, attr))
        ends = [e for e in (into.window_end, row.window_end) if e is not None]
        into.window_end = max(ends) if ends else None
        ages = [a for a in (into.oldest_ready, row.oldest_ready) if a is not None]
        into.oldest_ready = max(ages) if ages else None
    return list(merged.values())


def _q(schema: str) -> str:
    return '"' + schema + '"'  # schema is a validated plain identifier (settings._identifier)


def live_counts_sql(schema: str) -> str:
    return f"""
SELECT name AS queue,
       count(*) FILTER (WHERE state < 'active' AND start_after <= now()) AS ready,
       count(*) FILTER (WHERE state < 'active' AND start_after > now()) AS deferred,
       count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'failed') AS failed,
       extract(epoch FROM now() - min(start_after)
                 FILTER (WHERE state < 'active' AND start_after <= now()))::float8 AS oldest_ready
FROM {_q(schema)}.job
GROUP BY 1
"""  # noqa: S608 - identifier validated


def cached_counts_sql(schema: str, columns: set[str]) -> str:
    chosen = [f"{c}" if c in columns else f"NULL AS {c}" for c in CACHED_COLUMNS]
    return f"SELECT name AS queue, {', '.join(chosen)} FROM {_q(schema)}.queue"  # noqa: S608


def active_sql(schema: str, job_columns: set[str]) -> str:
    """Active jobs past their expiry, and active longer than $1 seconds (stuck)."""
    expiry = (
        "expire_seconds * interval '1 second'" if "expire_seconds" in job_columns else "expire_in"
    )
    return f"""
SELECT name AS queue, count(*) FILTER (WHERE started_on + {expiry} < now()) AS expired,
       count(*) FILTER (WHERE started_on < now() - $1 * interval '1 second') AS stuck
FROM {_q(schema)}.job
WHERE state = 'active'
GROUP BY 1
"""  # noqa: S608 - identifier validated, expiry from a fixed pair


def instances_sql(schema: str) -> str:
    return f"""
SELECT count(*) AS alive, coalesce(sum(crash_restarts), 0)::int AS crash_restarts
FROM {_q(schema)}.instance
WHERE stopped_on IS NULL AND heartbeat_on > now() - 3 * heartbeat_seconds * interval '1 second'
"""  # noqa: S608 - identifier validated


COLUMNS_SQL = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = $1 AND table_name IN ('queue', 'job', 'instance')
"""


@dataclass
class PgBossRows:
    present: bool
    version: int | None = None
    active: dict[str, tuple[int, int]] = field(default_factory=dict)  # queue -> expired, stuck
    instances: tuple[int, int] | None = None  # alive, crash restarts (pg-boss >= 11)
    cached: list[dict[str, Any]] | None = None  # pg-boss >= 11: its per-queue counters
    live: list[BossQueueRow] = field(default_factory=list)  # pg-boss 10: counted from the jobs


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
    )

    async def fetch(self, ctx: PollContext[PgBossSnapshot]) -> PgBossRows:
        schema = ctx.settings.pgboss_schema
        async with ctx.require_pool().acquire() as conn:
            if not await table_exists(conn, f"{_q(schema)}.version"):
                return PgBossRows(present=False)
            version = await conn.fetchval(f"SELECT max(version) FROM {_q(schema)}.version")  # noqa: S608
            if version is None or version < OLDEST_SUPPORTED:  # the queries below need >= 24
                raise PgBossError(
                    f"pg-boss schema version {version} in {schema!r} is older "
                    f"than {OLDEST_SUPPORTED} (pg-boss 10); not supported"
                )
            columns: dict[str, set[str]] = {}
            for row in await conn.fetch(COLUMNS_SQL, schema):
                columns.setdefault(row["table_name"], set()).add(row["column_name"])
            active = await conn.fetch(
                active_sql(schema, columns.get("job", set())), ctx.settings.stuck_after
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
                rows.live = [BossQueueRow(**r) for r in await conn.fetch(live_counts_sql(schema))]
        return rows

    def build(
        self, rows: PgBossRows, previous: PgBossSnapshot | None, settings: SidecarSettings
    ) -> PgBossSnapshot:
        if not rows.present or rows.version is None:
            return PgBossSnapshot(present=False)
        if rows.cached is not None:
            return from_cached(
                rows.cached,
                rows.active,
                rows.instances,
                rows.version,
                previous,
                settings.max_job_names,
            )
        live = [replace(row, expired=0, stuck=0) for row in rows.live]
        for row in live:
            row.expired, row.stuck = rows.active.get(row.queue, (0, 0))
        alive, crashes = rows.instances if rows.instances else (None, None)
        return PgBossSnapshot(
            True,
            rows.version,
            "live",
            fold_queues(live, settings.max_job_names),
            instances_alive=alive,
            crash_restarts=crashes,
        )

    def signals(self, snap: PgBossSnapshot, settings: SidecarSettings) -> SourceSignals:
        """Ready, stuck and crashes; and, from pg-boss's latest monitor window, finished counts,
        run-time p95s (with the jobs behind them) and the last completion, for every window."""
        queues = snap.queues
        overall = Signals(
            ready=sum(q.ready for q in queues),
            crashes=snap.crash_restarts or 0,
            stuck=sum(q.stuck for q in queues),
        )
        completed = sum(q.window_completed for q in queues)
        failed = sum(q.window_failed for q in queues)
        latency = [
            LatencyCandidate(x.queue, x.run_p95, x.run_sample)
            for x in snap.latency
            if x.run_p95 is not None
        ]
        for window in trigger_windows(settings):
            overall.finished[window] = Finished(completed + failed, failed)
            overall.latency[window] = list(latency)
            if snap.last_completion is not None:  # kept across windows without a completion
                overall.last_completion[window] = snap.last_completion
        return SourceSignals(overall)

    def render(self, snap: PgBossSnapshot, settings: SidecarSettings) -> Iterable[Metric]:
        states = ("ready", "deferred", "blocked", "active", "failed")
        yield samples(JOBS, (((q.queue, s), getattr(q, s)) for q in snap.queues for s in states))
        yield samples(
            OLDEST_READY,
            (((q.queue,), q.oldest_ready) for q in snap.queues if q.oldest_ready is not None),
        )
        yield samples(EXPIRED, (((q.queue,), q.expired) for q in snap.queues))
        # Totals are kept per queue (each has its own monitor window); rendered within the cap.
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


def from_cached(
    rows: list[dict[str, Any]],
    active: dict[str, tuple[int, int]],
    instances: tuple[int, int] | None,
    version: int,
    previous: PgBossSnapshot | None,
    cap: int,
) -> PgBossSnapshot:
    """pg-boss >= 11: its cached per-queue counters -> a snapshot. Pure."""
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
                row["failed_count"] or 0,
                row["ready_oldest_seconds"],
                *active.get(row["queue"], (0, 0)),
                row["completed_delta"] or 0,
                row["failed_delta"] or 0,
                row["delta_on"].timestamp() if row["delta_on"] is not None else None,
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
    totals = add_deltas(previous.totals if previous else [], rows, first_poll=previous is None)
    ends = [q.window_end for q in queues if q.window_completed and q.window_end is not None]
    earlier = previous.last_completion if previous is not None else None
    return PgBossSnapshot(
        True,
        version,
        "cached",
        fold_queues(queues, cap),
        totals,
        latency,
        instances[0] if instances else None,
        instances[1] if instances else None,
        max([*ends, *([earlier] if earlier is not None else [])], default=None),
    )


SOURCE = PgBossSource()
