"""What newer pg-boss releases record for operators, read where present:

- **Keys blocked by failed jobs.** In a `key_strict_fifo` queue (pg-boss 12), a job that failed
  for good holds its singleton key: the key's later jobs wait until someone retries or deletes it,
  and nothing else says so (its queue looks merely backlogged). Counted per queue: the keys held,
  and the jobs waiting behind them; the stalled trigger names them.
- **Persisted warnings** (pg-boss 12 with `persistWarnings`: slow queries, queue backlogs, clock
  skew, handler overruns): counted by type over JOBSIGHT_RECENT_WINDOW.
- **Stored queue statistics** (pg-boss 12 with `persistQueueStats`: a `queue_stats` row per queue
  at each monitor pass): the latest one's time, which says whether pg-boss's monitor still runs,
  and the jobs created per second over its window, which nothing else in pg-boss records. Read
  per queue through pg-boss's own (name, captured_on) index: one row each, whatever the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import Metric

from jobsight.labels import LabelCap
from jobsight.metric_spec import MetricSpec, samples
from jobsight.sources.pgboss_layout import quoted

BLOCKED_KEYS = MetricSpec(
    "jobsight_pgboss_blocked_keys",
    "gauge",
    "Singleton keys of a key_strict_fifo pg-boss queue held by a job that failed for good: their "
    "later jobs wait until it is retried or deleted.",
    ("queue",),
)
BLOCKED_JOBS = MetricSpec(
    "jobsight_pgboss_jobs_behind_blocked_keys",
    "gauge",
    "Jobs of a key_strict_fifo pg-boss queue waiting behind a key a failed job holds.",
    ("queue",),
)
WARNINGS = MetricSpec(
    "jobsight_pgboss_warnings_recent",
    "gauge",
    "Warnings pg-boss persisted (persistWarnings) within JOBSIGHT_RECENT_WINDOW, by their type "
    "(kind: slow_query, queue_backlog, clock_skew, ...).",
    ("kind",),
)
STATS_CAPTURED = MetricSpec(
    "jobsight_pgboss_stats_captured_timestamp_seconds",
    "gauge",
    "When pg-boss last stored a queue's statistics (queue_stats, persistQueueStats), Unix time.",
    ("queue",),
)
STATS_CREATED = MetricSpec(
    "jobsight_pgboss_stats_created_per_second",
    "gauge",
    "Jobs created per second in a pg-boss queue over the window of its latest stored statistics "
    "(created_delta / delta_seconds).",
    ("queue",),
)
METRICS = (BLOCKED_KEYS, BLOCKED_JOBS, WARNINGS, STATS_CAPTURED, STATS_CREATED)
MAX_STATS_QUEUES = 1000


def blocked_sql(schema: str) -> str:
    """Per queue: the keys failed jobs hold, and the waiting jobs behind them (pg-boss's own
    partial indexes on (name, singleton_key) serve both sides)."""
    job = f"{quoted(schema)}.job"
    return f"""
SELECT f.name AS queue, count(DISTINCT f.singleton_key)::int AS keys, count(w.id)::int AS behind
FROM {job} f
LEFT JOIN {job} w ON w.name = f.name AND w.singleton_key = f.singleton_key
                 AND w.state < 'active' AND w.policy = 'key_strict_fifo'
WHERE f.policy = 'key_strict_fifo' AND f.state = 'failed' AND f.singleton_key IS NOT NULL
GROUP BY 1
"""  # noqa: S608 - a validated identifier


def warnings_sql(schema: str) -> str:
    """$1 recent window (s)."""
    return f"""
SELECT type, count(*)::int AS count FROM {quoted(schema)}.warning
WHERE created_on > now() - $1 * interval '1 second'
GROUP BY 1
"""  # noqa: S608 - a validated identifier


def stats_sql(schema: str, stats_columns: set[str]) -> str:
    """The latest stored statistics of each queue (LATERAL: one index probe per queue)."""
    has_rate = {"created_delta", "delta_seconds"} <= stats_columns
    rate = (
        "CASE WHEN s.delta_seconds > 0 THEN s.created_delta::float8 / s.delta_seconds END"
        if has_rate
        else "NULL::float8"
    )
    picked = ", created_delta, delta_seconds" if has_rate else ""
    return f"""
SELECT q.name AS queue, extract(epoch FROM s.captured_on)::float8 AS captured_on,
       {rate} AS created_per_second
FROM {quoted(schema)}.queue q
CROSS JOIN LATERAL (
  SELECT captured_on{picked} FROM {quoted(schema)}.queue_stats s
  WHERE s.name = q.name ORDER BY s.captured_on DESC LIMIT 1
) s
ORDER BY q.name
LIMIT {MAX_STATS_QUEUES}
"""  # noqa: S608 - a validated identifier and constants


@dataclass(frozen=True)
class QueueStats:
    queue: str
    captured_on: float  # Unix time
    created_per_second: float | None  # None: the release records no created delta


@dataclass(frozen=True)
class BlockedKeys:
    queue: str
    keys: int
    behind: int


@dataclass
class BossRecords:
    blocked: list[BlockedKeys] | None = None  # None: the release has no key_strict_fifo
    warnings: dict[str, int] | None = None  # None: no warning table (pg-boss < 12)
    stats: list[QueueStats] | None = None  # None: no queue_stats table


def render(records: BossRecords, cap: int) -> Iterable[Metric]:
    if records.blocked is not None:
        yield samples(BLOCKED_KEYS, (((b.queue,), b.keys) for b in records.blocked))
        yield samples(BLOCKED_JOBS, (((b.queue,), b.behind) for b in records.blocked))
    if records.warnings is not None:
        yield samples(WARNINGS, (((t,), n) for t, n in sorted(records.warnings.items())))
    if records.stats is not None:
        names = LabelCap(cap)  # a time and a rate do not add up: past the cap, left out
        shown = [q for q in records.stats if names(q.queue) == q.queue]
        yield samples(STATS_CAPTURED, (((q.queue,), q.captured_on) for q in shown))
        yield samples(
            STATS_CREATED,
            (((q.queue,), q.created_per_second) for q in shown if q.created_per_second is not None),
        )


def explain(records: BossRecords) -> str:
    """For the stalled trigger's detail: which keys hold work back, if any."""
    held = [b for b in records.blocked or [] if b.keys]
    if not held:
        return ""
    parts = ", ".join(f"{b.queue} ({b.keys} keys, {b.behind} jobs behind)" for b in held)
    return f"pg-boss keys held by failed jobs: {parts}"
