"""jobsight runners: one JobRunner interface, two engines (pgqueue, temporal).

Engines are imported only when chosen, so `import runners` stays light.
"""

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

from runners.errors import (
    DuplicateHandlerError,
    IllegalTransitionError,
    JobNotFoundError,
    JobsightError,
    UnknownJobError,
    ValidationError,
)
from runners.interface import (
    HandlerConfig,
    JobContext,
    JobRunner,
    JobStatusInfo,
    RetryPolicy,
    ScheduleOptions,
    ScheduleResult,
)
from runners.registry import HandlerRegistry
from runners.status import JobStatus

__all__ = [
    "DuplicateHandlerError",
    "HandlerConfig",
    "HandlerRegistry",
    "IllegalTransitionError",
    "JobContext",
    "JobNotFoundError",
    "JobRunner",
    "JobStatus",
    "JobStatusInfo",
    "JobsightError",
    "RetryPolicy",
    "ScheduleOptions",
    "ScheduleResult",
    "UnknownJobError",
    "ValidationError",
]
