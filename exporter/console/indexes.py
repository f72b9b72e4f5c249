"""The console search's indexes on `jobs`, opt-in (`jobsight console-indexes`): they make every
page of the search a few milliseconds on millions of jobs, and cost every job three more index
writes, so a busy pgqueue loses a quarter of its throughput (docs/benchmarks.md). Without them the
search still works, but on a big table a search the other indexes cannot serve stops at
JOBSIGHT_CONSOLE_QUERY_TIMEOUT and says so."""

from __future__ import annotations

# name -> definition (after `ON jobs`)
INDEXES = {
    "jobs_created_idx": "(created_at, job_id)",
    "jobs_type_created_idx": "(type, created_at, job_id)",
    # the jobs not completed (failed, cancelled, waiting, running: a few percent of a history),
    # so that a status filter reads only its own rows
    "jobs_open_created_idx": "(created_at, job_id) WHERE status <> 'completed'",
    "jobs_open_type_created_idx": "(type, created_at, job_id) WHERE status <> 'completed'",
}


def create_statements() -> list[str]:
    """One statement each: CONCURRENTLY, so that a live table keeps taking writes (and so each
    runs outside a transaction block)."""
    return [
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON jobs {definition}"
        for name, definition in INDEXES.items()
    ]


def drop_statements() -> list[str]:
    return [f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name in INDEXES]
