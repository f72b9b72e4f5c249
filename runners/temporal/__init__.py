"""temporal: jobsight's Temporal engine (the Enterprise path). Imported only when chosen."""

from jobsight.runners.temporal.runner import (
    SingletonConflictError,
    TemporalJobRunner,
    TemporalUnavailableError,
)
from jobsight.runners.temporal.settings import TemporalSettings

__all__ = [
    "SingletonConflictError",
    "TemporalJobRunner",
    "TemporalSettings",
    "TemporalUnavailableError",
]
