"""Finished pg-boss jobs, counted from pg-boss's job table itself (every supported release).

pg-boss keeps a finished job in its `job` table, with `completed_on` set, for days (pg-boss 11
and later delete it `deleteAfterSeconds` after it finished, 7 days by default; pg-boss 10 moves
it to `archive` after 12 hours by default, so that table is read too, through its `archived_on`
index). The counters add the jobs that finished in [cursor, commit horizon) at each count, and
move the cursor to the horizon: the same horizon as the jobs source (sources/finished.py), so a
completion that commits late is counted once, never lost. The same pass gives the rollback
triggers their windows: jobs finished and failed, the p95 run time and the last completion.

Where every table behind `job` has an index led by (name, completed_on) (pg-boss 12's job_i16),
the count walks it queue by queue and costs what the recent jobs cost (a release that caches no
failed count also needs one led by (name, state) covering failed jobs, for that count). Elsewhere
it is one sequential scan, and JOBSIGHT_PGBOSS_SCAN_SHARE bounds how much of the time goes to it:
a scan that took t seconds is not repeated before t / share seconds have passed. The cursor stays
put in between, so a slower count is a later count, never a wrong one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobsight.sources.pgboss_layout import BossLayout
from jobsight.sources.signals import Finished

FINISHED_STATES = "('completed', 'failed')"

# $1 the schema-qualified job table, as text. Whether every leaf table behind it has a valid index
# led by (name, completed_on) for the finished jobs (pg-boss 12's job_i16), and one led by
# (name, state) that covers failed jobs (its job_i14).
INDEXES_SQL = """
WITH keyed AS (
  SELECT t.relid, a0.attname AS first, a1.attname AS second,
         coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS predicate
  FROM pg_partition_tree(to_regclass($1)) t
  JOIN pg_index i ON i.indrelid = t.relid AND i.indisvalid
  JOIN pg_attribute a0 ON a0.attrelid = i.indrelid AND a0.attnum = i.indkey[0]
  JOIN pg_attribute a1 ON a1.attrelid = i.indrelid AND a1.attnum = i.indkey[1]
  WHERE t.isleaf
)
SELECT count(*) > 0 AND bool_and(EXISTS (
         SELECT 1 FROM keyed l WHERE l.relid = t.relid
           AND (l.first, l.second) = ('name', 'completed_on')
           AND l.predicate IN ('', '(completed_on IS NOT NULL)'))) AS finished,
       count(*) > 0 AND bool_and(EXISTS (
         SELECT 1 FROM keyed l WHERE l.relid = t.relid
           AND (l.first, l.second) = ('name', 'state')
           AND (l.predicate = '' OR l.predicate LIKE '%''failed''%'))) AS failed
FROM pg_partition_tree(to_regclass($1)) t
WHERE t.isleaf
"""


@dataclass
class WindowCount:
    seconds: float
    finished: int = 0
    failed: int = 0

    @property
    def counts(self) -> Finished:
        return Finished(self.finished, self.failed)


@dataclass
class QueueFinished:
    """One queue's finished jobs: new since the cursor, and in each trigger window."""

    queue: str
    completed: int = 0  # finished as completed in [cursor, horizon)
    failed: int = 0  # finished as failed in [cursor, horizon)
    failed_retained: int | None = None  # failed jobs in the job table now
    last_completion: float | None = None  # Unix time
    run_p95: float | None = None  # over the latency window, completed and failed jobs
    run_sample: int = 0
    windows: list[WindowCount] = field(default_factory=list)

    def window(self, seconds: float) -> Finished:
        return next((w.counts for w in self.windows if w.seconds == seconds), Finished())


@dataclass
class CountTiming:
    """When the latest count ran and how long it took (wall clock, so it survives a handover)."""

    at: float
    seconds: float
    indexed: bool
    ok: bool = True  # False: the count ran out of time (statement_timeout); nothing was counted


def count_due(last: CountTiming | None, now: float, share: float) -> bool:
    """Whether to count now: always through the index; a scan only once the previous scan's
    duration divided by the allowed share of time has passed. Pure."""
    if last is None or (last.indexed and last.ok):
        return True
    return now - last.at >= last.seconds / share


LOWER_BOUND = "least($1::timestamptz, now() - $4 * interval '1 second')"  # $4 longest window


SINCE = "completed_on > now() - ${} * interval '1 second'"
RUN_TIMES = f"state IN {FINISHED_STATES} AND started_on IS NOT NULL AND {SINCE.format(3)}"
RUN_P95 = (
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_on - started_on))"
)


def counts(windows: Sequence[float]) -> str:
    """The per-queue counts. $1 cursor, $2 horizon, $4 the longest window (s: the last
    completion is looked for that far back); window k is $(5+k). Every bound is a parameter."""
    columns = [
        "count(*) FILTER (WHERE state = 'completed' AND completed_on >= $1 AND completed_on < $2)"
        " AS completed",
        "count(*) FILTER (WHERE state = 'failed' AND completed_on >= $1 AND completed_on < $2)"
        " AS failed",
        "extract(epoch FROM max(completed_on) FILTER"
        f" (WHERE state = 'completed' AND completed_on >= {LOWER_BOUND}))::float8"
        " AS last_completion",
    ]
    for k in range(len(windows)):
        bound = SINCE.format(5 + k)
        columns.append(
            f"count(*) FILTER (WHERE state IN {FINISHED_STATES} AND {bound}) AS finished_{k}"
        )
        columns.append(f"count(*) FILTER (WHERE state = 'failed' AND {bound}) AS failed_{k}")
    return ",\n       ".join(columns)


def _rows(tables: BossLayout, per_queue: bool) -> str:
    """The job rows a count reads: per queue (q.name) and recent only when `per_queue`;
    the archive (pg-boss 9 and 10) only as far back as the lower bound, through its
    archived_on index."""
    recent = f" AND completed_on >= {LOWER_BOUND}"
    same = " AND name = q.name" if per_queue else ""
    job = f"SELECT name, state, started_on, completed_on, true AS retained FROM {tables.job} j"  # noqa: S608
    if per_queue:
        job += f" WHERE true{same}{recent}"
    if tables.archive is None:
        return job
    archived = f"SELECT name, state, started_on, completed_on, false FROM {tables.archive} a"  # noqa: S608
    return f"{job}\n  UNION ALL {archived} WHERE archived_on >= {LOWER_BOUND}{same}"


def scan_sql(tables: BossLayout, windows: Sequence[float]) -> str:
    """One hashed pass over the whole job table (which also counts the failed jobs it retains),
    and the run-time p95 apart: an ordered-set aggregate in that pass would sort every row.
    Every queue pg-boss knows has a row (an empty one counts 0)."""
    rows = _rows(tables, per_queue=False)
    return f"""
WITH counted AS (
  SELECT name, {counts(windows)},
         count(*) FILTER (WHERE retained AND state = 'failed') AS failed_retained
  FROM ({rows}) j
  GROUP BY 1
), latency AS (
  SELECT name, {RUN_P95} AS run_p95, count(*) AS run_sample
  FROM ({rows}) j
  WHERE {RUN_TIMES}
  GROUP BY 1
)
SELECT coalesce(counted.name, q.name) AS queue, counted.*,
       coalesce(counted.failed_retained, 0) AS failed_retained,
       latency.run_p95, coalesce(latency.run_sample, 0) AS run_sample
FROM counted
FULL JOIN {tables.queue} q ON q.name = counted.name
LEFT JOIN latency ON latency.name = counted.name
"""  # noqa: S608 - identifier validated, the rest this module's text


def indexed_sql(tables: BossLayout, windows: Sequence[float], failed: bool) -> str:
    """Queue by queue through the (name, completed_on) index, recent rows only; with `failed`,
    also the failed jobs retained, through a (name, state) index (a count that visits every
    retained failed job: only where pg-boss caches no failed count)."""
    retained = (
        f"(SELECT count(*) FROM {tables.job} f"  # noqa: S608
        " WHERE f.name = q.name AND f.state = 'failed')"
        if failed
        else "NULL::bigint"
    )
    return f"""
SELECT q.name AS queue, c.*, {retained} AS failed_retained
FROM {tables.queue} q
CROSS JOIN LATERAL (
  SELECT {counts(windows)},
         {RUN_P95} FILTER (WHERE {RUN_TIMES}) AS run_p95,
         count(*) FILTER (WHERE {RUN_TIMES}) AS run_sample
  FROM ({_rows(tables, per_queue=True)}) j
) c
"""  # noqa: S608 - identifier validated, the rest this module's text


def count_args(
    cursor: datetime, horizon: datetime, latency_window: float, windows: Sequence[float]
) -> list[Any]:
    return [cursor, horizon, latency_window, max(windows, default=latency_window), *windows]


def from_rows(rows: Sequence[dict[str, Any]], windows: Sequence[float]) -> list[QueueFinished]:
    """Query rows -> per-queue counts (a count that found no row is 0). Pure."""

    def n(value: Any) -> int:
        return int(value or 0)

    out = []
    for row in rows:
        out.append(
            QueueFinished(
                row["queue"],
                n(row["completed"]),
                n(row["failed"]),
                None if row["failed_retained"] is None else int(row["failed_retained"]),
                row["last_completion"],
                row["run_p95"],
                n(row["run_sample"]),
                [
                    WindowCount(w, n(row[f"finished_{k}"]), n(row[f"failed_{k}"]))
                    for k, w in enumerate(windows)
                ],
            )
        )
    return sorted(out, key=lambda q: q.queue)
