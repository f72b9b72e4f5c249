"""One module per polled system, each the same shape (sources/base.py): its queries, an I/O step
that only fetches rows, a pure rows-to-snapshot step, its metric descriptions and its trigger
signals. `load_source` imports only the chosen ones, so the temporal source (and temporalio) is
imported only when enabled."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from jobsight.settings import SidecarSettings
from jobsight.sources.base import Source

MODULES = {
    "jobs": "jobsight.sources.jobs",
    "pgqueue": "jobsight.sources.pgqueue",
    "pgboss": "jobsight.sources.pgboss",
    "postgres": "jobsight.sources.postgres",
    "temporal": "jobsight.sources.temporal",
    "traces": "jobsight.sources.traces",
}


def enabled(settings: SidecarSettings) -> tuple[str, ...]:
    """The sources this sidecar polls: the chosen ones, and traces when exporting is on."""
    return (*settings.sources, *(("traces",) if settings.traces else ()))


def load_source(name: str) -> Source[Any]:
    source: Source[Any] = importlib.import_module(MODULES[name]).SOURCE
    return source


def all_modules() -> list[ModuleType]:
    """Every source module (for the metrics reference); imports no engine library."""
    return [importlib.import_module(path) for path in MODULES.values()]
