"""jobsight runners: one JobRunner interface, two engines (pgqueue, temporal).

Engines are imported only when chosen, and the names below only when first used (PEP 562), so
`import jobsight.runners` loads nothing: the Temporal workflow sandbox re-imports the packages
above the workflow's module for every workflow run, and each one here would cost every job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobsight.runners.lazy import lazy_names

if TYPE_CHECKING:
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

_HOME = {
    "DuplicateHandlerError": "errors",
    "IllegalTransitionError": "errors",
    "JobNotFoundError": "errors",
    "JobsightError": "errors",
    "SchemaMissingError": "errors",
    "UnknownJobError": "errors",
    "ValidationError": "errors",
    "HandlerConfig": "interface",
    "JobContext": "interface",
    "JobRunner": "interface",
    "JobStatusInfo": "interface",
    "RetryPolicy": "interface",
    "ScheduleOptions": "interface",
    "ScheduleResult": "interface",
    "HandlerRegistry": "registry",
    "JobStatus": "status",
}

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


__getattr__ = lazy_names(__name__, _HOME)
