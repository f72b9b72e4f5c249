"""The postgres source: client connections in use, by state and application, against what the
server can give to ordinary roles (max_connections minus the reserved slots).

Sessions of other roles show their state only to members of pg_read_all_stats (pg_monitor);
without it they count under state 'unknown'. The README's grants section says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from jobsight.labels import LabelCap
from jobsight.metric_spec import MetricSpec, samples, single
from jobsight.settings import SidecarSettings
from jobsight.sources.base import PollContext, RowSource
from jobsight.sources.signals import Signals, SourceSignals

CONNECTIONS = MetricSpec(
    "jobsight_postgres_connections",
    "gauge",
    "Client connections to the server, by state and application name.",
    ("state", "application"),
)
AVAILABLE = MetricSpec(
    "jobsight_postgres_connections_available",
    "gauge",
    "Connections ordinary roles may open: max_connections minus "
    "superuser_reserved_connections and reserved_connections.",
)
MAX = MetricSpec("jobsight_postgres_connections_max", "gauge", "The server's max_connections.")

CONNECTIONS_SQL = """
SELECT coalesce(state, 'unknown') AS state, coalesce(application_name, '') AS application,
       count(*) AS count
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1, 2
"""

LIMITS_SQL = """
SELECT current_setting('max_connections')::int AS max,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved
"""


@dataclass
class ConnectionRow:
    state: str
    application: str
    count: int


@dataclass
class PostgresSnapshot:
    connections: list[ConnectionRow] = field(default_factory=list)
    max_connections: int = 0
    reserved: int = 0

    @property
    def available(self) -> int:
        return max(0, self.max_connections - self.reserved)

    @property
    def in_use(self) -> int:
        return sum(row.count for row in self.connections)


def build_snapshot(
    rows: Iterable[ConnectionRow], max_connections: int, reserved: int, cap: int
) -> PostgresSnapshot:
    apps = LabelCap(cap)
    merged: dict[tuple[str, str], int] = {}
    for row in sorted(rows, key=lambda r: -r.count):  # the busiest applications get names
        key = (row.state, apps(row.application or "none"))
        merged[key] = merged.get(key, 0) + row.count
    return PostgresSnapshot(
        [ConnectionRow(state, app, count) for (state, app), count in sorted(merged.items())],
        max_connections,
        reserved,
    )


@dataclass
class PostgresRows:
    connections: list[ConnectionRow]
    max_connections: int
    reserved: int


class PostgresSource(RowSource[PostgresRows, PostgresSnapshot]):
    name = "postgres"
    snapshot_type = PostgresSnapshot
    metrics = (CONNECTIONS, AVAILABLE, MAX)

    async def fetch(self, ctx: PollContext[PostgresSnapshot]) -> PostgresRows:
        async with ctx.require_pool().acquire() as conn:
            rows = await conn.fetch(CONNECTIONS_SQL)
            limits = await conn.fetchrow(LIMITS_SQL)
        return PostgresRows([ConnectionRow(**r) for r in rows], limits["max"], limits["reserved"])

    def build(
        self, rows: PostgresRows, previous: PostgresSnapshot | None, settings: SidecarSettings
    ) -> PostgresSnapshot:
        return build_snapshot(
            rows.connections, rows.max_connections, rows.reserved, settings.max_applications
        )

    def render(self, snap: PostgresSnapshot, settings: SidecarSettings) -> Iterable[Metric]:
        yield samples(CONNECTIONS, (((r.state, r.application), r.count) for r in snap.connections))
        yield single(AVAILABLE, snap.available)
        yield single(MAX, snap.max_connections)

    def signals(self, snap: PostgresSnapshot, settings: SidecarSettings) -> SourceSignals:
        known = snap.available > 0  # max_connections unknown: no ratio to judge
        return SourceSignals(Signals(connections=(snap.in_use, snap.available) if known else None))


SOURCE = PostgresSource()
