"""The pgqueue source: jobsight's own queue tables (schema `pgqueue`) and its worker registry.

Waiting and active jobs are read through the queue's partial indexes (waiting: job_fetch_idx,
active: job_active_idx) and recent failures through job_finished_idx, so a poll never scans
finished history. A database without the schema yields an empty snapshot (`present` false).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from jobsight.labels import LabelCap
from jobsight.metric_spec import MetricSpec, samples, single
from jobsight.settings import SidecarSettings
from jobsight.sources.base import PollContext, RowSource, table_exists
from jobsight.sources.signals import Signals, SourceSignals
from jobsight.sources.versions import MAX_VERSIONS

QUEUE = ("queue",)
QUEUE_STATES = ("created", "retry", "active")  # the states a queue's depth is shown in
DEPTH = MetricSpec(
    "jobsight_pgqueue_jobs",
    "gauge",
    "pgqueue jobs waiting or running, by queue (job name) and state (created, retry, active).",
    ("queue", "state"),
)
READY = MetricSpec(
    "jobsight_pgqueue_ready_jobs",
    "gauge",
    "pgqueue jobs ready to run now (created or retry, start time reached).",
    QUEUE,
)
OLDEST_READY = MetricSpec(
    "jobsight_pgqueue_oldest_ready_age_seconds",
    "gauge",
    "How long the oldest ready pgqueue job has been ready.",
    QUEUE,
)
EXPIRED = MetricSpec(
    "jobsight_pgqueue_expired_active_jobs",
    "gauge",
    "Active pgqueue jobs past their expiry, not yet recovered.",
    QUEUE,
)
RECENT_FAILED = MetricSpec(
    "jobsight_pgqueue_recent_failed_jobs",
    "gauge",
    "pgqueue jobs that failed for good within JOBSIGHT_RECENT_WINDOW.",
    QUEUE,
)
RECENT_DEAD = MetricSpec(
    "jobsight_pgqueue_recent_dead_lettered_jobs",
    "gauge",
    "Of those, jobs copied to a dead-letter queue.",
    QUEUE,
)
WORKERS = MetricSpec(
    "jobsight_pgqueue_workers_alive", "gauge", "pgqueue workers registered as running."
)
CRASHES = MetricSpec(
    "jobsight_pgqueue_worker_crashes_recent",
    "gauge",
    "pgqueue workers found crashed within JOBSIGHT_RECENT_WINDOW.",
)

MAINTENANCE = MetricSpec(
    "jobsight_pgqueue_maintenance_last_round_timestamp_seconds",
    "gauge",
    "When a pgqueue maintenance round (crash detection, lost jobs, schedules) last finished "
    "(Unix time); absent before migration 0005 or without read access to pgqueue.maintenance.",
)
SCHEDULE = ("schedule",)
SCHEDULE_NEXT_DUE = MetricSpec(
    "jobsight_pgqueue_schedule_next_due_timestamp_seconds",
    "gauge",
    "When the job name's earliest enabled pgqueue schedule is next due (Unix time); in the past "
    "while it has not fired (the schedule_missed trigger).",
    SCHEDULE,
)
SCHEDULE_LAST_FIRE = MetricSpec(
    "jobsight_pgqueue_schedule_last_fire_timestamp_seconds",
    "gauge",
    "When a pgqueue schedule of the job name last fired (Unix time); absent before its first.",
    SCHEDULE,
)
SCHEDULE_FAILURES = MetricSpec(
    "jobsight_pgqueue_schedule_failed_firings",
    "gauge",
    "Firings of the job name's pgqueue schedules that failed in a row (pgqueue.schedule."
    "last_error says why); 0 once one fires.",
    SCHEDULE,
)

# Per job name: its enabled schedules' earliest due time, the last fire of any, failed firings.
SCHEDULES = """
SELECT name AS schedule,
       extract(epoch FROM min(next_run_at) FILTER (WHERE enabled))::float8 AS next_due,
       extract(epoch FROM max(last_run_at))::float8 AS last_fire,
       coalesce(max(failures) FILTER (WHERE enabled), 0)::int AS failures
FROM pgqueue.schedule
GROUP BY 1
"""

WAITING_AND_ACTIVE = """
SELECT name AS queue, state::text AS state, count(*) AS count,
       count(*) FILTER (WHERE start_after <= now()) AS ready,
       extract(epoch FROM now() - min(start_after) FILTER (WHERE start_after <= now()))::float8
         AS oldest_ready,
       0::bigint AS expired
FROM pgqueue.job WHERE state < 'active'
GROUP BY 1, 2
UNION ALL
SELECT name, 'active', count(*), 0, NULL,
       count(*) FILTER (WHERE expire_ms IS NOT NULL
                          AND started_at + expire_ms * interval '1 millisecond' < now())
FROM pgqueue.job WHERE state = 'active'
GROUP BY 1
"""

# $1 recent window (seconds)
RECENT = """
SELECT name AS queue, count(*) FILTER (WHERE state = 'failed') AS failed,
       count(*) FILTER (WHERE state = 'failed' AND dead_letter IS NOT NULL) AS dead_lettered
FROM pgqueue.job
WHERE state > 'active' AND completed_at > now() - $1 * interval '1 second'
GROUP BY 1
"""

# `served`: the job names running workers take or enabled schedules fire: known queues, which
# keep their series (0 when empty), since completed jobs leave the queue table.
WORKERS_SQL = """
SELECT count(*) FILTER (WHERE state = 'running') AS alive,
       count(*) FILTER (WHERE state = 'crashed'
                          AND stopped_at > now() - $1 * interval '1 second') AS crashes,
       coalesce((SELECT array_agg(DISTINCT q ORDER BY q) FROM (
                   SELECT unnest(r.queues) AS q FROM pgqueue.worker r WHERE r.state = 'running'
                   UNION SELECT name FROM pgqueue.schedule WHERE enabled) known), '{}') AS served
FROM pgqueue.worker
WHERE state = 'running' OR stopped_at > now() - $1 * interval '1 second'
"""

# $1 window (s), $2 versions kept: per worker version, the workers that ran in the window and
# those declared crashed in it (a crash-looping pod registers a new worker at each start), for
# the canary analysis.
WORKERS_BY_VERSION = """
SELECT coalesce(version, '') AS version, count(*) AS workers,
       count(*) FILTER (WHERE state = 'crashed') AS crashed
FROM pgqueue.worker
WHERE state = 'running' OR stopped_at > now() - $1 * interval '1 second'
GROUP BY 1
ORDER BY count(*) DESC, 1
LIMIT $2
"""

# The maintenance stamp, when the table exists (migration 0005) and this role may read it.
MAINTENANCE_READABLE = """
SELECT to_regclass('pgqueue.maintenance') IS NOT NULL
       AND has_table_privilege('pgqueue.maintenance', 'SELECT')
"""
MAINTENANCE_SQL = "SELECT extract(epoch FROM last_round_at)::float8 FROM pgqueue.maintenance"


@dataclass
class QueueRow:
    queue: str
    state: str
    count: int
    ready: int = 0
    oldest_ready: float | None = None
    expired: int = 0


@dataclass
class RecentRow:
    queue: str
    failed: int
    dead_lettered: int


@dataclass(frozen=True)
class ScheduleRow:
    """A job name's pgqueue schedules: next due (enabled only), last fire, failed firings."""

    schedule: str
    next_due: float | None
    last_fire: float | None
    failures: int = 0


@dataclass(frozen=True)
class VersionWorkers:
    """One worker version's pgqueue workers over the canary window, and how many crashed."""

    version: str
    workers: int
    crashed: int


@dataclass
class PgQueueSnapshot:
    present: bool = True
    queues: list[QueueRow] = field(default_factory=list)
    recent: list[RecentRow] = field(default_factory=list)
    workers_alive: int = 0
    worker_crashes: int = 0
    maintained_at: float | None = None  # Unix time of the last maintenance round, if known
    workers_by_version: list[VersionWorkers] = field(default_factory=list)
    schedules: list[ScheduleRow] = field(default_factory=list)


def build_snapshot(
    queues: Iterable[QueueRow],
    recent: Iterable[RecentRow],
    alive: int,
    crashes: int,
    cap: int,
    served: Iterable[str] = (),
) -> PgQueueSnapshot:
    """Merges the rows under the job-name cap. A queue is known while it has jobs, a running
    worker serves it or a schedule fires it: each known queue gets every series (depth by
    state, ready, oldest ready age, recent failures), 0 when empty, so an emptied queue reads 0
    instead of vanishing from /metrics."""
    queues = list(queues)
    names = LabelCap(cap)
    merged: dict[tuple[str, str], QueueRow] = {}
    for row in sorted(queues, key=lambda r: (r.queue, r.state)):
        key = (names(row.queue), row.state)
        into = merged.setdefault(key, QueueRow(key[0], row.state, 0))
        into.count += row.count
        into.ready += row.ready
        into.expired += row.expired
        ages = [a for a in (into.oldest_ready, row.oldest_ready) if a is not None]
        into.oldest_ready = max(ages) if ages else None
    recent_merged: dict[str, RecentRow] = {}
    known = [RecentRow(name, 0, 0) for name in {*served, *(r.queue for r in queues)}]
    for seen in sorted([*recent, *known], key=lambda r: r.queue):
        name = names(seen.queue)
        into_recent = recent_merged.setdefault(name, RecentRow(name, 0, 0))
        into_recent.failed += seen.failed
        into_recent.dead_lettered += seen.dead_lettered
    for name in recent_merged:  # a known queue reads 0 in every state, not nothing
        for state in QUEUE_STATES:
            merged.setdefault((name, state), QueueRow(name, state, 0))
    ordered = sorted(merged.values(), key=lambda r: (r.queue, QUEUE_STATES.index(r.state)))
    return PgQueueSnapshot(True, ordered, list(recent_merged.values()), alive, crashes)


@dataclass
class PgQueueRows:
    present: bool
    queues: list[QueueRow] = field(default_factory=list)
    recent: list[RecentRow] = field(default_factory=list)
    alive: int = 0
    crashes: int = 0
    served: list[str] = field(default_factory=list)
    maintained_at: float | None = None
    workers_by_version: list[VersionWorkers] = field(default_factory=list)
    schedules: list[ScheduleRow] = field(default_factory=list)


class PgQueueSource(RowSource[PgQueueRows, PgQueueSnapshot]):
    name = "pgqueue"
    snapshot_type = PgQueueSnapshot
    metrics = (
        DEPTH,
        READY,
        OLDEST_READY,
        EXPIRED,
        RECENT_FAILED,
        RECENT_DEAD,
        WORKERS,
        CRASHES,
        MAINTENANCE,
        SCHEDULE_NEXT_DUE,
        SCHEDULE_LAST_FIRE,
        SCHEDULE_FAILURES,
    )

    async def fetch(self, ctx: PollContext[PgQueueSnapshot]) -> PgQueueRows:
        window = ctx.settings.recent_window
        async with ctx.require_pool().acquire() as conn:
            if not await table_exists(conn, "pgqueue.job"):
                return PgQueueRows(present=False)
            queues = await conn.fetch(WAITING_AND_ACTIVE)
            recent = await conn.fetch(RECENT, window)
            workers = await conn.fetchrow(WORKERS_SQL, window)
            by_version = await conn.fetch(
                WORKERS_BY_VERSION, ctx.settings.canary_window, MAX_VERSIONS
            )
            schedules = await conn.fetch(SCHEDULES)
            maintained = None
            if await conn.fetchval(MAINTENANCE_READABLE):
                maintained = await conn.fetchval(MAINTENANCE_SQL)
        return PgQueueRows(
            True,
            [QueueRow(**r) for r in queues],
            [RecentRow(**r) for r in recent],
            workers["alive"],
            workers["crashes"],
            list(workers["served"]),
            maintained,
            [VersionWorkers(**r) for r in by_version],
            [ScheduleRow(**r) for r in schedules],
        )

    def build(
        self, rows: PgQueueRows, previous: PgQueueSnapshot | None, settings: SidecarSettings
    ) -> PgQueueSnapshot:
        if not rows.present:
            return PgQueueSnapshot(present=False)
        snapshot = build_snapshot(
            rows.queues, rows.recent, rows.alive, rows.crashes, settings.max_job_names, rows.served
        )
        snapshot.maintained_at = rows.maintained_at
        snapshot.workers_by_version = rows.workers_by_version
        names = LabelCap(settings.max_job_names)
        snapshot.schedules = [
            ScheduleRow(names(r.schedule), r.next_due, r.last_fire, r.failures)
            for r in sorted(rows.schedules, key=lambda r: r.schedule)
        ]
        return snapshot

    def render(self, snap: PgQueueSnapshot, settings: SidecarSettings) -> Iterable[Metric]:
        yield samples(DEPTH, (((r.queue, r.state), r.count) for r in snap.queues))
        waiting = _by_queue(r for r in snap.queues if r.state != "active")
        yield samples(READY, (((q,), sum(r.ready for r in rows)) for q, rows in waiting.items()))
        yield samples(
            OLDEST_READY,
            (
                ((q,), max((r.oldest_ready for r in rows if r.oldest_ready is not None), default=0))
                for q, rows in waiting.items()
            ),
        )
        yield samples(
            EXPIRED, (((r.queue,), r.expired) for r in snap.queues if r.state == "active")
        )
        yield samples(RECENT_FAILED, (((r.queue,), r.failed) for r in snap.recent))
        yield samples(RECENT_DEAD, (((r.queue,), r.dead_lettered) for r in snap.recent))
        yield single(WORKERS, snap.workers_alive if snap.present else None)
        yield single(CRASHES, snap.worker_crashes if snap.present else None)
        yield single(MAINTENANCE, snap.maintained_at)
        yield from schedule_metrics(snap.schedules)

    def signals(self, snap: PgQueueSnapshot, settings: SidecarSettings) -> SourceSignals:
        ready = sum(r.ready for r in snap.queues if r.state != "active")
        due = min(
            ((r.next_due, r.schedule) for r in snap.schedules if r.next_due is not None),
            default=None,
        )
        return SourceSignals(Signals(ready=ready, crashes=snap.worker_crashes, schedule_due=due))


def schedule_metrics(rows: list[ScheduleRow]) -> Iterable[Metric]:
    """Rows already merged under the label cap: a folded name keeps the earliest due, the
    latest fire and the most failed firings."""
    due: dict[str, float] = {}
    fired: dict[str, float] = {}
    failures: dict[str, float] = {}
    for r in rows:
        if r.next_due is not None:
            due[r.schedule] = min(due.get(r.schedule, r.next_due), r.next_due)
        if r.last_fire is not None:
            fired[r.schedule] = max(fired.get(r.schedule, r.last_fire), r.last_fire)
        failures[r.schedule] = max(failures.get(r.schedule, 0), r.failures)
    yield samples(SCHEDULE_NEXT_DUE, (((n,), v) for n, v in sorted(due.items())))
    yield samples(SCHEDULE_LAST_FIRE, (((n,), v) for n, v in sorted(fired.items())))
    yield samples(SCHEDULE_FAILURES, (((n,), v) for n, v in sorted(failures.items())))


def _by_queue(rows: Iterable[QueueRow]) -> dict[str, list[QueueRow]]:
    grouped: dict[str, list[QueueRow]] = {}
    for row in rows:
        grouped.setdefault(row.queue, []).append(row)
    return grouped


SOURCE = PgQueueSource()
