"""What every source shares: the poll context it is given and the protocol it implements."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from prometheus_client.core import Metric

from jobsight.metric_spec import MetricSpec
from jobsight.settings import SidecarSettings


@dataclass
class PollContext:
    settings: SidecarSettings
    pool: asyncpg.Pool | None
    previous: Any = None  # this source's last good snapshot (cumulative totals carry on)
    clients: dict[str, Any] = field(default_factory=dict)  # e.g. a Temporal client, reused


class Source(Protocol):
    name: str
    snapshot_type: type
    metrics: tuple[MetricSpec, ...]

    async def poll(self, ctx: PollContext) -> Any: ...

    def render(self, snapshot: Any, settings: SidecarSettings) -> Iterable[Metric]: ...


async def table_exists(conn: asyncpg.Connection, qualified: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified)
