"""pgqueue: jobsight's Postgres job queue on asyncpg (the Community engine)."""

from runners.pgqueue.runner import PgQueueJobRunner
from runners.pgqueue.settings import PgQueueSettings

__all__ = ["PgQueueJobRunner", "PgQueueSettings"]
