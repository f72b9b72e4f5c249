"""The contract every source implements, the same for all (as postgres_exporter's collectors):

    fetch(ctx)                      -> rows        I/O only: runs the source's queries
    build(rows, previous, settings) -> snapshot    pure: rows in, typed snapshot out
    render(snapshot, settings)      -> metrics     pure: the metric families it serves
    signals(snapshot, settings)     -> signals     pure: what the rollback triggers judge

`poll` is fetch then build; the poller calls it with a timeout, stores the snapshot and adopts it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
from prometheus_client.core import Metric

from jobsight.metric_spec import MetricSpec
from jobsight.settings import SidecarSettings
from jobsight.sources.signals import SourceSignals

RowsT = TypeVar("RowsT")
SnapT = TypeVar("SnapT")


@dataclass
class PollContext(Generic[SnapT]):
    settings: SidecarSettings
    pool: asyncpg.Pool | None
    previous: SnapT | None = None  # this source's last good snapshot (cumulative totals carry on)
    clients: dict[str, Any] = field(default_factory=dict)  # e.g. a Temporal client, reused

    def require_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("this source reads the database, and was given no pool")
        return self.pool


class Source(Protocol[SnapT]):
    """What the poller, the collector and the triggers see of a source."""

    name: str
    snapshot_type: type[SnapT]
    metrics: tuple[MetricSpec, ...]

    async def poll(self, ctx: PollContext[SnapT]) -> SnapT: ...

    def render(self, snapshot: SnapT, settings: SidecarSettings) -> Iterable[Metric]: ...

    def signals(self, snapshot: SnapT, settings: SidecarSettings) -> SourceSignals: ...


class RowSource(ABC, Generic[RowsT, SnapT]):
    """A source as an I/O step that only fetches rows and a pure step that builds the snapshot."""

    name: str
    snapshot_type: type[SnapT]
    metrics: tuple[MetricSpec, ...]

    @abstractmethod
    async def fetch(self, ctx: PollContext[SnapT]) -> RowsT:
        """Runs the queries; returns their rows, untouched."""

    @abstractmethod
    def build(self, rows: RowsT, previous: SnapT | None, settings: SidecarSettings) -> SnapT:
        """Rows (and the previous snapshot, for running totals) -> the new snapshot. Pure."""

    @abstractmethod
    def render(self, snapshot: SnapT, settings: SidecarSettings) -> Iterable[Metric]:
        """The snapshot's metric families. Pure."""

    def signals(self, snapshot: SnapT, settings: SidecarSettings) -> SourceSignals:
        """What the snapshot tells the rollback triggers (nothing, unless a source says)."""
        return SourceSignals()

    async def poll(self, ctx: PollContext[SnapT]) -> SnapT:
        return self.build(await self.fetch(ctx), ctx.previous, ctx.settings)


async def table_exists(conn: asyncpg.Connection, qualified: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified))
