"""Settings of the Temporal engine (the seed's names: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_JOB_TASK_QUEUE), validated when built."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from jobsight.runners import defaults
from jobsight.runners.errors import ValidationError
from jobsight.runners.temporal_access import TemporalAccess
from jobsight.runners.validation import DEFAULT_MAX_METADATA_BYTES


@dataclass(frozen=True)
class TemporalSettings:
    address: str = defaults.TEMPORAL_ADDRESS
    namespace: str = defaults.TEMPORAL_NAMESPACE
    task_queue: str = defaults.TEMPORAL_TASK_QUEUE
    access: TemporalAccess = field(default_factory=TemporalAccess)  # TLS, mTLS, API key
    connect_timeout: timedelta = timedelta(seconds=10)
    rpc_timeout: timedelta = timedelta(seconds=10)
    shutdown_grace: timedelta = defaults.SHUTDOWN_GRACE
    heartbeat_timeout: timedelta = defaults.HEARTBEAT_TIMEOUT
    max_concurrent_activities: int = defaults.MAX_CONCURRENT_ACTIVITIES
    pool_size: int = 10
    max_payload_bytes: int = DEFAULT_MAX_METADATA_BYTES
    worker_version: str = field(default_factory=defaults.default_worker_version)

    def __post_init__(self) -> None:
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit():
            raise ValidationError("TEMPORAL_ADDRESS", f"must be host:port, got {self.address!r}")
        for name in ("namespace", "task_queue"):
            if not getattr(self, name).strip():
                raise ValidationError(name, "must not be empty")
        for name in ("connect_timeout", "rpc_timeout", "heartbeat_timeout"):
            if getattr(self, name) <= timedelta(0):
                raise ValidationError(name, "must be positive")
        if self.max_concurrent_activities < 1 or self.pool_size < 2:
            raise ValidationError("max_concurrent_activities / pool_size", "too small")
