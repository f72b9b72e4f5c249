"""The pgboss source's pure steps, fed canned rows: rows -> snapshot -> metrics and signals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jobsight.labels import OTHER
from jobsight.settings import SidecarSettings
from jobsight.sources import pgboss
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


def test_pgboss_deltas_add_each_monitor_window_once():
    stamp = T0
    first = pgboss.add_deltas(
        [],
        [{"queue": "q", "completed_delta": 9, "failed_delta": 1, "delta_on": stamp}],
        first_poll=True,
    )
    assert (first[0].completed, first[0].failed) == (0, 0)  # the baseline window
    same = pgboss.add_deltas(
        first,
        [{"queue": "q", "completed_delta": 9, "failed_delta": 1, "delta_on": stamp}],
        first_poll=False,
    )
    assert (same[0].completed, same[0].failed) == (0, 0)
    later = pgboss.add_deltas(
        same,
        [
            {
                "queue": "q",
                "completed_delta": 4,
                "failed_delta": 2,
                "delta_on": stamp + timedelta(seconds=60),
            },
            {"queue": "new", "completed_delta": 5, "failed_delta": 0, "delta_on": stamp},
        ],
        first_poll=False,
    )
    assert [(t.queue, t.completed, t.failed) for t in later] == [("new", 5, 0), ("q", 4, 2)]
    assert (first[0].completed, same[0].completed) == (0, 0)  # inputs untouched


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
        "completed_delta": 0,
        "failed_delta": 0,
        "delta_on": None,
        "wait_bins": None,
        "run_bins": [1, 0],
    }
    snap = pgboss.from_cached([row], {"emails": (1, 0)}, (2, 3), 46, None, 10)
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


def test_cached_latency_carries_its_real_sample() -> None:
    snap = pgboss.PgBossSnapshot(
        queues=[pgboss.BossQueueRow("emails", window_completed=9, window_failed=1, window_end=5.0)],
        latency=[pgboss.BossLatency("emails", 0.5, 42.0, 3)],
        last_completion=5.0,
    )
    signals = pgboss.SOURCE.signals(snap, SETTINGS_OBJ).overall
    assert signals.latency[300.0][0].sample == 3  # not enough for the default minimum of 5
    assert signals.finished[300.0].failed == 1 and signals.last_completion[300.0] == 5.0


def test_the_last_completion_is_kept_across_windows_without_one() -> None:
    """stalled: a pg-boss monitor window with no completion does not make the last completion
    unknown (which read as the whole look-back): it stays the latest window that had one."""
    from datetime import UTC, datetime

    def row(completed: int, end: float) -> dict[str, object]:
        return {"queue": "emails", **dict.fromkeys(pgboss.CACHED_COLUMNS),
                "queued_count": 3, "completed_delta": completed,
                "delta_on": datetime.fromtimestamp(end, UTC)}  # fmt: skip

    first = pgboss.from_cached([row(4, 1000.0)], {}, None, 46, None, 10)
    quiet = pgboss.from_cached([row(0, 1060.0)], {}, None, 46, first, 10)
    assert quiet.last_completion == 1000.0
    signals = pgboss.SOURCE.signals(quiet, SETTINGS_OBJ).overall
    assert set(signals.last_completion.values()) == {1000.0}
    later = pgboss.from_cached([row(2, 1120.0)], {}, None, 46, quiet, 10)
    assert later.last_completion == 1120.0
