"""The pgqueue source's pure steps, fed canned rows: rows -> snapshot -> metrics and signals."""

from __future__ import annotations

from typing import Any

from jobsight.sources import pgqueue
from tests.support.canned import PLAIN as SETTINGS_OBJ
from tests.support.scrape import Samples, rendered


def render(source: Any, snapshot: Any) -> Samples:
    return rendered(source, snapshot, SETTINGS_OBJ)


def test_pgqueue_rows_to_metrics():
    snap = pgqueue.build_snapshot(
        [
            pgqueue.QueueRow("a", "created", 5, 3, 12.0),
            pgqueue.QueueRow("a", "retry", 2, 2, 30.0),
            pgqueue.QueueRow("a", "active", 4, 0, None, 1),
        ],
        [pgqueue.RecentRow("a", 3, 1)],
        alive=2,
        crashes=1,
        cap=10,
    )
    metrics = render(pgqueue.SOURCE, snap)
    assert metrics["jobsight_pgqueue_ready_jobs"][(("queue", "a"),)] == 5
    assert metrics["jobsight_pgqueue_oldest_ready_age_seconds"][(("queue", "a"),)] == 30.0
    assert metrics["jobsight_pgqueue_expired_active_jobs"][(("queue", "a"),)] == 1
    assert metrics["jobsight_pgqueue_jobs"][(("queue", "a"), ("state", "retry"))] == 2
    assert metrics["jobsight_pgqueue_recent_dead_lettered_jobs"][(("queue", "a"),)] == 1
    assert metrics["jobsight_pgqueue_workers_alive"][()] == 2
    assert metrics["jobsight_pgqueue_worker_crashes_recent"][()] == 1
    empty = render(pgqueue.SOURCE, pgqueue.PgQueueSnapshot(present=False))
    assert "jobsight_pgqueue_workers_alive" not in empty


def test_pgqueue_queues_in_use_report_zero_recent_failures():
    snap = pgqueue.build_snapshot(
        [pgqueue.QueueRow("waiting", "created", 1)],
        [pgqueue.RecentRow("failing", 2, 0)],
        alive=1,
        crashes=0,
        cap=10,
        served=["served", "failing"],
    )
    failed = render(pgqueue.SOURCE, snap)["jobsight_pgqueue_recent_failed_jobs"]
    assert failed == {
        (("queue", "failing"),): 2,
        (("queue", "served"),): 0,
        (("queue", "waiting"),): 0,
    }


def test_build_from_rows_and_the_signals_it_gives() -> None:
    rows = pgqueue.PgQueueRows(
        True,
        [pgqueue.QueueRow("a", "created", 5, 3, 12.0), pgqueue.QueueRow("a", "active", 4, 0)],
        [pgqueue.RecentRow("a", 1, 0)],
        alive=2,
        crashes=1,
        served=["b"],
    )
    snap = pgqueue.SOURCE.build(rows, None, SETTINGS_OBJ)
    assert sorted(r.queue for r in snap.recent) == ["a", "b"]
    signals = pgqueue.SOURCE.signals(snap, SETTINGS_OBJ).overall
    assert (signals.ready, signals.crashes) == (3, 1)  # active jobs are not ready work
    absent = pgqueue.SOURCE.build(pgqueue.PgQueueRows(False), None, SETTINGS_OBJ)
    assert absent == pgqueue.PgQueueSnapshot(present=False)
