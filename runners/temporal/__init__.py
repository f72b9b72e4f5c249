"""temporal: jobsight's Temporal engine (the Enterprise path). Imported only when chosen.

The names below load on first use (PEP 562): the workflow sandbox re-imports this package for
every workflow run, and it must not pull the runner (asyncpg, the client, the worker) each time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobsight.runners.lazy import lazy_names

if TYPE_CHECKING:
    from jobsight.runners.temporal.runner import (
        CircuitOpenError,
        SingletonConflictError,
        TemporalJobRunner,
        TemporalUnavailableError,
    )
    from jobsight.runners.temporal.settings import TemporalSettings

_HOME = {
    "CircuitOpenError": "runner",
    "SingletonConflictError": "runner",
    "TemporalJobRunner": "runner",
    "TemporalUnavailableError": "runner",
    "TemporalSettings": "settings",
}

__all__ = [
    "CircuitOpenError",
    "SingletonConflictError",
    "TemporalJobRunner",
    "TemporalSettings",
    "TemporalUnavailableError",
]


__getattr__ = lazy_names(__name__, _HOME)
