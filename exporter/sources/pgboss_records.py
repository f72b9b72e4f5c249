"""What newer pg-boss releases record for operators, read where present:

- **Keys blocked by failed jobs.** In a `key_strict_fifo` queue (pg-boss 12), a job that failed
  for good holds its singleton key: the key's later jobs wait until someone retries or deletes it,
  and nothing else says so (its queue looks merely backlogged). Counted per queue: the keys held,
  and the jobs waiting behind them; the stalled trigger names them.
- **Persisted warnings** (pg-boss 12 with `persistWarnings`: slow queries, queue backlogs, clock
  skew, handler overruns): counted by type over JOBSIGHT_RECENT_WINDOW.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import Metric

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
METRICS = (BLOCKED_KEYS, BLOCKED_JOBS, WARNINGS)


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


@dataclass(frozen=True)
class BlockedKeys:
    queue: str
    keys: int
    behind: int


@dataclass
class BossRecords:
    blocked: list[BlockedKeys] | None = None  # None: the release has no key_strict_fifo
    warnings: dict[str, int] | None = None  # None: no warning table (pg-boss < 12)


def render(records: BossRecords) -> Iterable[Metric]:
    if records.blocked is not None:
        yield samples(BLOCKED_KEYS, (((b.queue,), b.keys) for b in records.blocked))
        yield samples(BLOCKED_JOBS, (((b.queue,), b.behind) for b in records.blocked))
    if records.warnings is not None:
        yield samples(WARNINGS, (((t,), n) for t, n in sorted(records.warnings.items())))


def explain(records: BossRecords) -> str:
    """For the stalled trigger's detail: which keys hold work back, if any."""
    held = [b for b in records.blocked or [] if b.keys]
    if not held:
        return ""
    parts = ", ".join(f"{b.queue} ({b.keys} keys, {b.behind} jobs behind)" for b in held)
    return f"pg-boss keys held by failed jobs: {parts}"
