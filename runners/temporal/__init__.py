"""temporal: jobsight's Temporal engine (the Enterprise path). Imported only when chosen."""

from runners.temporal.runner import (
    SingletonConflictError,
    TemporalJobRunner,
    TemporalUnavailableError,
)
from runners.temporal.settings import TemporalSettings

__all__ = [
    "SingletonConflictError",
    "TemporalJobRunner",
    "TemporalSettings",
    "TemporalUnavailableError",
]
