"""One module per polled system. Each holds its queries, its snapshot (plain data), the pure
rows-to-snapshot step and the metrics it renders. `load_source` imports only the chosen ones,
so the temporal source (and temporalio) is imported only when enabled."""

from __future__ import annotations

import importlib

from jobsight.sources.base import Source

MODULES = {
    "jobs": "jobsight.sources.jobs",
    "pgqueue": "jobsight.sources.pgqueue",
    "pgboss": "jobsight.sources.pgboss",
    "postgres": "jobsight.sources.postgres",
    "temporal": "jobsight.sources.temporal",
}


def load_source(name: str) -> Source:
    return importlib.import_module(MODULES[name]).SOURCE


def all_modules():  # type: ignore[no-untyped-def]
    """Every source module (for the metrics reference); imports no engine library."""
    return [importlib.import_module(path) for path in MODULES.values()]
