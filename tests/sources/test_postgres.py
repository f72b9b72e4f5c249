"""The postgres source's pure steps, fed canned rows: rows -> snapshot -> metrics and signals."""

from __future__ import annotations

from typing import Any

from jobsight.labels import OTHER
from jobsight.sources import postgres
from tests.support.canned import PLAIN as SETTINGS_OBJ
from tests.support.scrape import Samples, rendered


def render(source: Any, snapshot: Any) -> Samples:
    return rendered(source, snapshot, SETTINGS_OBJ)


def test_postgres_connections_against_available_slots():
    rows = [
        postgres.ConnectionRow("idle", "app", 5),
        postgres.ConnectionRow("active", "", 1),
        postgres.ConnectionRow("active", "rare", 1),
    ]
    snap = postgres.build_snapshot(rows, 100, 3, cap=2)
    assert (snap.available, snap.in_use) == (97, 7)
    metrics = render(postgres.SOURCE, snap)
    assert (
        metrics["jobsight_postgres_connections"][(("application", "app"), ("state", "idle"))] == 5
    )
    assert (
        metrics["jobsight_postgres_connections"][(("application", OTHER), ("state", "active"))] == 1
    )


def test_build_from_rows_and_the_signals_it_gives() -> None:
    rows = postgres.PostgresRows([postgres.ConnectionRow("active", "app", 40)], 103, 3)
    snap = postgres.SOURCE.build(rows, None, SETTINGS_OBJ)
    assert postgres.SOURCE.signals(snap, SETTINGS_OBJ).overall.connections == (40, 100)
    unknown = postgres.SOURCE.build(postgres.PostgresRows([], 0, 0), None, SETTINGS_OBJ)
    assert postgres.SOURCE.signals(unknown, SETTINGS_OBJ).overall.connections is None
