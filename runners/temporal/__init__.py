"""temporal: jobsight's Temporal engine (the Enterprise path). Imported only when chosen."""

from runners.temporal.runner import TemporalJobRunner, TemporalUnavailableError
from runners.temporal.settings import TemporalSettings

__all__ = ["TemporalJobRunner", "TemporalSettings", "TemporalUnavailableError"]
