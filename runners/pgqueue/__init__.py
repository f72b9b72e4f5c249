"""pgqueue: jobsight's Postgres job queue on asyncpg (the Community engine)."""

from jobsight.runners.pgqueue.runner import PgQueueJobRunner
from jobsight.runners.pgqueue.settings import PgQueueSettings

__all__ = ["PgQueueJobRunner", "PgQueueSettings"]
