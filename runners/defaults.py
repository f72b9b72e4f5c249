"""Defaults both engines, the runner factory, the `jobsight worker` command and the sidecar share:
each written here once. Importing this module imports no engine."""

from __future__ import annotations

import os
from datetime import timedelta

# Temporal: where the cluster is and which task queue the job workflow uses (the seed's names).
TEMPORAL_ADDRESS = "localhost:7233"
TEMPORAL_NAMESPACE = "default"
TEMPORAL_TASK_QUEUE = "jobsight-jobs"

# Workers.
CONCURRENCY = 10  # pgqueue: jobs of one name running at once in one worker
BATCH_SIZE = 100  # pgqueue: most jobs taken per fetch
MAX_CONCURRENT_ACTIVITIES = 100  # temporal: activities (job attempts) running at once
SHUTDOWN_GRACE = timedelta(seconds=30)  # on stop, how long running jobs may finish
HEARTBEAT_INTERVAL = timedelta(seconds=5)
HEARTBEAT_TIMEOUT = timedelta(seconds=30)  # a worker or job silent this long is lost
MAINTENANCE_INTERVAL = timedelta(seconds=1)  # pgqueue: crash detection, lost jobs, schedules

# The Temporal engine's circuit breaker (runners/breaker.py, runners/fallback.py): a process
# refreshes its `runner_breakers` row this often; a row older than BREAKER_STALE_AFTER is gone.
BREAKER_REFRESH = timedelta(seconds=15)
BREAKER_STALE_AFTER = 3 * BREAKER_REFRESH
# A row gone this long is folded into its engine's retired row (its fallbacks kept), checked by
# each process this often: the table holds the processes of the last hour, not of every deploy.
BREAKER_RETIRE_AFTER = timedelta(hours=1)
BREAKER_RETIRE_EVERY = timedelta(minutes=10)


def default_worker_version() -> str:
    """JOBSIGHT_WORKER_VERSION (the application's release), else jobsight's own version."""
    configured = os.environ.get("JOBSIGHT_WORKER_VERSION", "").strip()
    if configured:
        return configured
    from jobsight import __version__

    return __version__
