"""Settings of the pgqueue engine: one typed object, validated when built."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from jobsight.runners import defaults
from jobsight.runners.errors import ValidationError
from jobsight.runners.validation import DEFAULT_MAX_METADATA_BYTES

# Maintenance runs at least this often per heartbeat timeout: a gap between rounds longer than
# half the timeout is read as the database having been away (see maintenance.py).
MAINTENANCE_ROUNDS_PER_TIMEOUT = 4


@dataclass(frozen=True)
class PgQueueSettings:
    concurrency: int = defaults.CONCURRENCY  # jobs of one name running at once in one worker
    concurrency_by_name: dict[str, int] = field(default_factory=dict)
    batch_size: int = defaults.BATCH_SIZE  # most jobs taken per fetch
    max_unwritten_outcomes: int = 5000  # fetching pauses while this many await writing
    poll_interval: timedelta = timedelta(seconds=1)  # fallback when no NOTIFY arrives
    heartbeat_interval: timedelta = defaults.HEARTBEAT_INTERVAL
    heartbeat_timeout: timedelta = defaults.HEARTBEAT_TIMEOUT  # a silent worker or job is lost
    maintenance_interval: timedelta = defaults.MAINTENANCE_INTERVAL  # crashes, expiry, cron
    retention: timedelta = timedelta(days=7)  # finished queue rows kept this long
    retention_interval: timedelta = timedelta(minutes=5)
    retention_batch: int = 1000
    shutdown_grace: timedelta = defaults.SHUTDOWN_GRACE
    pool_size: int = 10
    statement_timeout: timedelta = timedelta(seconds=30)
    max_payload_bytes: int = DEFAULT_MAX_METADATA_BYTES
    worker_version: str = field(default_factory=defaults.default_worker_version)

    def __post_init__(self) -> None:
        positive_ints = {
            "concurrency": self.concurrency,
            "batch_size": self.batch_size,
            "max_unwritten_outcomes": self.max_unwritten_outcomes,
            "retention_batch": self.retention_batch,
            "max_payload_bytes": self.max_payload_bytes,
        }
        for name, value in positive_ints.items():
            if not isinstance(value, int) or value < 1:
                raise ValidationError(name, f"must be a whole number >= 1, got {value!r}")
        if self.pool_size < 2:
            raise ValidationError("pool_size", f"must be >= 2, got {self.pool_size!r}")
        for name, value in self.concurrency_by_name.items():
            if not isinstance(value, int) or value < 1:
                raise ValidationError(f"concurrency_by_name[{name}]", "must be a whole number >= 1")
        durations: dict[str, timedelta] = {
            "poll_interval": self.poll_interval,
            "heartbeat_interval": self.heartbeat_interval,
            "heartbeat_timeout": self.heartbeat_timeout,
            "maintenance_interval": self.maintenance_interval,
            "retention": self.retention,
            "retention_interval": self.retention_interval,
            "statement_timeout": self.statement_timeout,
        }
        for name, duration in durations.items():
            if duration <= timedelta(0):
                raise ValidationError(name, f"must be positive, got {duration}")
        if self.shutdown_grace < timedelta(0):
            raise ValidationError("shutdown_grace", "must not be negative")
        if self.heartbeat_timeout < self.maintenance_interval * MAINTENANCE_ROUNDS_PER_TIMEOUT:
            raise ValidationError(
                "maintenance_interval",
                f"must be at most 1/{MAINTENANCE_ROUNDS_PER_TIMEOUT} of heartbeat_timeout, or "
                "ordinary gaps between maintenance rounds look like database outages",
            )
        if self.heartbeat_timeout <= self.heartbeat_interval * 2:
            raise ValidationError(
                "heartbeat_timeout", "must exceed twice heartbeat_interval, or live work looks lost"
            )

    @property
    def job_renew_after(self) -> timedelta:
        """A running job's heartbeat is renewed once it is older than this: half the timeout
        less one interval, so it is never older than about half the timeout (the same slack a
        worker's own heartbeat has against a late round), and a job that finishes sooner is
        never rewritten by a heartbeat. Zero (every heartbeat) when the interval is that long."""
        return max(timedelta(0), self.heartbeat_timeout / 2 - self.heartbeat_interval)

    def concurrency_for(self, name: str) -> int:
        return self.concurrency_by_name.get(name, self.concurrency)
