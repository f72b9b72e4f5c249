"""The pgboss source's pure steps, fed canned rows: rows -> snapshot -> metrics and signals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jobsight.labels import OTHER
from jobsight.settings import SidecarSettings
from jobsight.sources import pgboss
from jobsight.sources.pgboss_finished import CountTiming, QueueFinished, WindowCount, count_due
from tests.support.canned import FINISHED_AT as T0
from tests.support.canned import PLAIN as SETTINGS_OBJ
from tests.support.scrape import Samples, rendered


def render(source: Any, snapshot: Any) -> Samples:
    return rendered(source, snapshot, SETTINGS_OBJ)


def test_pgboss_percentile_matches_pg_boss_bins():
    assert pgboss.percentile(None, 95) is None and pgboss.percentile([0, 0], 95) is None
    assert pgboss.percentile([5, 0, 0], 95) == pgboss.LATENCY_MIN_SECONDS
    bins = [0] * 46
    bins[10] = 100  # slot 10: [0.01 * sqrt2^9, 0.01 * sqrt2^10)
    p95 = pgboss.percentile(bins, 95)
    assert 0.01 * 2**4.5 <= p95 <= 0.01 * 2**5
    bins[45] = 1000
    assert pgboss.percentile(bins, 99) == pytest.approx(0.01 * 2**22)


def test_counts_add_to_the_totals_without_touching_them() -> None:
    before = [pgboss.BossTotals("q", 4, 1)]
    after = pgboss.add_counts(before, [QueueFinished("q", 2, 3), QueueFinished("new", 5, 0)])
    assert [(t.queue, t.completed, t.failed) for t in after] == [("new", 5, 0), ("q", 6, 4)]
    assert (before[0].completed, before[0].failed) == (4, 1)


def test_a_scan_waits_its_share_of_time_and_an_index_never_waits() -> None:
    assert count_due(None, 100.0, 0.05)
    scan = CountTiming(at=100.0, seconds=2.0, indexed=False)
    assert not count_due(scan, 139.0, 0.05) and count_due(scan, 140.0, 0.05)
    assert count_due(CountTiming(at=100.0, seconds=2.0, indexed=True), 100.1, 0.05)
    cancelled = CountTiming(at=100.0, seconds=5.0, indexed=True, ok=False)
    assert not count_due(cancelled, 150.0, 0.05) and count_due(cancelled, 200.0, 0.05)


def count(horizon_s: float, *queues: QueueFinished, ok: bool = True) -> pgboss.FinishedCount:
    return pgboss.FinishedCount(
        T0, T0 + timedelta(seconds=horizon_s), list(queues), CountTiming(1.0, 0.1, False, ok)
    )


def test_counts_carry_over_and_a_cancelled_count_moves_nothing() -> None:
    def snap() -> pgboss.PgBossSnapshot:
        return pgboss.PgBossSnapshot(queues=[pgboss.BossQueueRow("q", failed=None)])

    window = [WindowCount(300.0, 5, 2)]
    first = snap()
    pgboss.with_counts(
        first, count(10, QueueFinished("q", 3, 1, 7, 50.0, 0.5, 4, window)), previous=None
    )
    assert first.totals == [pgboss.BossTotals("q", 3, 1)] and first.queues[0].failed == 7
    assert (first.cursor, first.last_completion) == (T0 + timedelta(seconds=10), 50.0)
    carried = snap()
    pgboss.with_counts(carried, None, first)  # no count due: everything as it was
    assert (carried.totals, carried.cursor, carried.finished) == (
        first.totals,
        first.cursor,
        first.finished,
    )
    assert carried.queues[0].failed == 7  # the failed count of the latest count
    quiet = snap()
    pgboss.with_counts(quiet, count(20, QueueFinished("q", 0, 0, 7, None)), carried)
    assert quiet.last_completion == 50.0  # kept across counts without a completion
    cancelled = snap()
    pgboss.with_counts(cancelled, count(30, ok=False), quiet)
    assert (cancelled.totals, cancelled.cursor) == (quiet.totals, quiet.cursor)
    assert pgboss.SOURCE.signals(cancelled, SETTINGS_OBJ).overall.finished == {}
    assert cancelled.queues[0].failed is None  # unknown, so not exported as 0
    jobs = render(pgboss.SOURCE, cancelled)["jobsight_pgboss_jobs"]
    assert (("queue", "q"), ("state", "ready")) in jobs
    assert (("queue", "q"), ("state", "failed")) not in jobs


def test_pgboss_cached_counters_to_snapshot():
    row = {
        "queue": "emails",
        "deferred_count": 2,
        "queued_count": 7,
        "ready_count": 5,
        "blocked_count": 0,
        "active_count": 3,
        "failed_count": 1,
        "ready_oldest_seconds": 40,
        "wait_bins": None,
        "run_bins": [1, 0],
    }
    snap = pgboss.from_cached([row], {"emails": (1, 0)}, (2, 3), 46)
    (queue,) = snap.queues
    assert (queue.ready, queue.deferred, queue.active, queue.failed, queue.queued) == (
        5,
        2,
        3,
        1,
        7,
    )
    metrics = render(pgboss.SOURCE, snap)
    assert metrics["jobsight_pgboss_expired_active_jobs"][(("queue", "emails"),)] == 1
    assert metrics["jobsight_pgboss_crash_restarts"][()] == 3
    assert metrics["jobsight_pgboss_run_p95_seconds"][(("queue", "emails"),)] == 0.01
    assert metrics["jobsight_pgboss_schema_version"][()] == 46
    many = pgboss.PgBossSnapshot(totals=[pgboss.BossTotals(f"q{i}", 1, 1) for i in range(5)])
    capped = pgboss.SOURCE.render(many, SidecarSettings(database_url="x", max_job_names=2))
    counters = next(f for f in capped if f.name == "jobsight_pgboss_jobs_completed")
    assert {s.labels["queue"]: s.value for s in counters.samples if s.name.endswith("_total")} == {
        "q0": 1,
        "q1": 1,
        OTHER: 3,
    }


def test_build_from_live_rows_and_the_signals_it_gives() -> None:
    rows = pgboss.PgBossRows(
        True,
        24,
        {"emails": (1, 2)},
        None,
        None,
        [pgboss.BossQueueRow("emails", ready=7, active=3), pgboss.BossQueueRow("sms", ready=1)],
    )
    snap = pgboss.SOURCE.build(rows, None, SETTINGS_OBJ)
    emails = next(q for q in snap.queues if q.queue == "emails")
    assert (snap.counting, emails.expired, emails.stuck) == ("live", 1, 2)
    assert rows.live[0].stuck == 0  # the rows are not changed
    signals = pgboss.SOURCE.signals(snap, SETTINGS_OBJ).overall
    assert (signals.ready, signals.stuck, signals.crashes) == (8, 2, 0)
    assert pgboss.SOURCE.build(pgboss.PgBossRows(False), None, SETTINGS_OBJ).present is False


def test_signals_come_from_the_latest_count_of_the_job_table() -> None:
    snap = pgboss.PgBossSnapshot(
        counted=CountTiming(1.0, 0.1, True),
        finished=[
            QueueFinished("emails", run_p95=42.0, run_sample=3, windows=[WindowCount(300.0, 9, 1)]),
            QueueFinished("sms", windows=[WindowCount(300.0, 1, 1)]),
        ],
        last_completion=5.0,
    )
    signals = pgboss.SOURCE.signals(snap, SETTINGS_OBJ).overall
    assert signals.latency[300.0][0].sample == 3  # not enough for the default minimum of 5
    assert (signals.finished[300.0].finished, signals.finished[300.0].failed) == (10, 2)
    assert signals.last_completion[300.0] == 5.0
    uncounted = pgboss.PgBossSnapshot(last_completion=5.0)
    assert pgboss.SOURCE.signals(uncounted, SETTINGS_OBJ).overall.finished == {}
