"""Job statuses and the transitions between them: pure data, one source of truth.

`pending` and `queued` wait; `processing` runs (`active` is the seed schema's synonym, accepted
on rows written by older code); `completed`, `failed` and `cancelled` are final.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    PROCESSING = "processing"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


WAITING = frozenset({JobStatus.PENDING, JobStatus.QUEUED})
RUNNING = frozenset({JobStatus.PROCESSING, JobStatus.ACTIVE})
FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
UNFINISHED = WAITING | RUNNING

# target -> the statuses a job may be in to move there. A waiting or running job may be told
# its own status again (a redelivered update is a no-op); a finished job never moves.
_ALLOWED_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PENDING}),
    JobStatus.QUEUED: WAITING | RUNNING,  # running -> queued: waiting for a retry
    JobStatus.PROCESSING: WAITING | {JobStatus.PROCESSING},
    JobStatus.ACTIVE: WAITING | {JobStatus.ACTIVE},
    JobStatus.COMPLETED: RUNNING,
    JobStatus.FAILED: UNFINISHED,
    JobStatus.CANCELLED: UNFINISHED,
}


def allowed_from(target: JobStatus | str) -> frozenset[JobStatus]:
    """The statuses from which a job may move to `target`."""
    return _ALLOWED_FROM[JobStatus(target)]


def can_transition(current: JobStatus | str, target: JobStatus | str) -> bool:
    return JobStatus(current) in allowed_from(target)


def is_finished(status: JobStatus | str) -> bool:
    return JobStatus(status) in FINISHED
