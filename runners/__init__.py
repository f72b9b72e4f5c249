"""jobsight runners: one JobRunner interface, two engines (pgqueue, temporal).

Engines are imported only when chosen, so `import jobsight.runners` stays light.
"""

from jobsight.runners.errors import (
    DuplicateHandlerError,
    IllegalTransitionError,
    JobNotFoundError,
    JobsightError,
    SchemaMissingError,
    UnknownJobError,
    ValidationError,
)
from jobsight.runners.interface import (
    HandlerConfig,
    JobContext,
    JobRunner,
    JobStatusInfo,
    RetryPolicy,
    ScheduleOptions,
    ScheduleResult,
)
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.status import JobStatus

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
    "SchemaMissingError",
    "UnknownJobError",
    "ValidationError",
]
