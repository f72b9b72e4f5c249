"""The runners' circuit breakers, read by the jobs source from `runner_breakers` (migration 0009,
written by runners/breaker_record.py): each runner process's breaker per engine, and how many
jobs it sent to pgqueue instead.

A row refreshed within BREAKER_STALE_AFTER is a live process: its state counts in the gauge, the
verdict's detail and the console. The fallback counter sums every row, live or gone, so it only
grows. A database not migrated to 0009 has no breakers (nothing is exported, no error).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
from prometheus_client.core import Metric

from jobsight.metric_spec import MetricSpec, samples
from jobsight.runners import defaults
from jobsight.runners.breaker import BreakerState
from jobsight.runners.warn_once import warn_once

BREAKERS = MetricSpec(
    "jobsight_runner_breakers",
    "gauge",
    "Live runner processes whose circuit breaker for an engine is in a state (closed, open, "
    "half_open); open: that engine's scheduling calls fail fast or go to pgqueue.",
    ("engine", "state"),
)
FALLBACKS = MetricSpec(
    "jobsight_runner_fallbacks_total",
    "counter",
    "Jobs that runner processes scheduled on pgqueue because an engine's breaker was open or "
    "its call failed (JOB_RUNNER_FALLBACK_TO_PGQUEUE).",
    ("engine",),
)
log = logging.getLogger(__name__)
READ = """
SELECT engine, process, state, extract(epoch FROM since)::float8 AS since, reason, fallbacks,
       seen_at > now() - $1::interval AS live
FROM runner_breakers ORDER BY engine, process
"""


@dataclass
class BreakerRow:
    engine: str
    process: str
    state: str
    since: float
    reason: str
    fallbacks: int
    live: bool


async def read_breakers(conn: asyncpg.Connection) -> list[BreakerRow]:
    """The rows; none (nothing exported, the rest of the jobs source unharmed) where the table is
    missing or the sidecar's role may not read it (said once: `jobsight grants` again fixes it)."""
    try:
        rows = await conn.fetch(READ, defaults.BREAKER_STALE_AFTER)
    except asyncpg.UndefinedTableError:
        return []
    except asyncpg.InsufficientPrivilegeError:
        warn_once(
            log, "read refused", "cannot read runner_breakers (permission denied): breakers are"
            " not exported; run `jobsight grants` for the sidecar's role again",
        )  # fmt: skip
        return []
    return [BreakerRow(**row) for row in rows]


def render(rows: list[BreakerRow]) -> Iterable[Metric]:
    """Every state of every engine seen, zero included ("none open" is data)."""
    engines = sorted({row.engine for row in rows})
    states = {(engine, str(state)): 0.0 for engine in engines for state in BreakerState}
    fallbacks = dict.fromkeys(engines, 0.0)
    for row in rows:
        fallbacks[row.engine] += row.fallbacks
        if row.live:
            states[(row.engine, row.state)] = states.get((row.engine, row.state), 0.0) + 1
    yield samples(BREAKERS, sorted(states.items()))
    yield samples(FALLBACKS, (((engine,), count) for engine, count in fallbacks.items()))


def not_closed(rows: Iterable[BreakerRow]) -> list[BreakerRow]:
    """The live breakers that are open or half-open: what the verdict and the console show."""
    return [row for row in rows if row.live and row.state != BreakerState.CLOSED]
