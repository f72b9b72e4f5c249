"""The jobs source's pure steps, fed canned rows: rows -> snapshot -> metrics and signals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from jobsight.labels import OTHER, LabelCap, clean
from jobsight.sources import jobs
from jobsight.sources.finished import ZERO_UUID, FinishedCursor
from jobsight.sources.signals import Finished, LatencyCandidate
from jobsight.sources.versions import StuckRow
from tests.support.canned import FINISHED_AT as T0
from tests.support.canned import PLAIN as SETTINGS_OBJ
from tests.support.canned import finished_rows as finished
from tests.support.scrape import Samples, rendered


def render(source: Any, snapshot: Any) -> Samples:
    return rendered(source, snapshot, SETTINGS_OBJ)


def test_jobs_counters_grow_by_newly_finished_rows_only():
    first = jobs.build_snapshot(None, finished(3) + finished(2, status="failed"), [], T0, T0, 10)
    key = (("job_name", "generate-invoice"), ("runner", "pgqueue"))
    metrics = render(jobs.SOURCE, first)
    assert metrics["jobsight_jobs_completed_total"][key] == 3
    assert metrics["jobsight_jobs_failed_total"][key] == 2
    assert metrics["jobsight_job_duration_seconds_count"][key] == 5
    assert (
        metrics["jobsight_job_duration_seconds_bucket"][tuple(sorted((*key, ("le", "0.25"))))] == 5
    )
    assert (
        metrics["jobsight_job_duration_seconds_bucket"][tuple(sorted((*key, ("le", "0.1"))))] == 0
    )
    second = jobs.build_snapshot(first, finished(1, run_s=40.0), [], T0, T0, 10)
    again = render(jobs.SOURCE, second)
    assert again["jobsight_jobs_completed_total"][key] == 4
    assert again["jobsight_job_duration_seconds_bucket"][tuple(sorted((*key, ("le", "30.0"))))] == 5
    assert again["jobsight_job_duration_seconds_bucket"][tuple(sorted((*key, ("le", "60.0"))))] == 6
    # the previous snapshot is left as it was (a poll that is not stored is not counted)
    assert render(jobs.SOURCE, first)["jobsight_jobs_completed_total"][key] == 3
    assert second.cursor.job_id == finished(1)[0].job_id


def test_jobs_cursor_stays_when_nothing_finished_and_starts_at_the_horizon():
    first = jobs.build_snapshot(None, [], [], T0, T0 + timedelta(seconds=5), 10)
    assert first.cursor == FinishedCursor(T0, ZERO_UUID)
    assert first.counting_lag == 5.0
    rows = finished(2)
    second = jobs.build_snapshot(first, rows, [], T0, T0, 10)
    assert second.cursor == FinishedCursor(rows[-1].finished_at, rows[-1].job_id)
    third = jobs.build_snapshot(second, [], [], T0 + timedelta(seconds=9), T0, 10)
    assert third.cursor == second.cursor


def test_label_cap_folds_unexpected_job_names_into_other():
    rows = [jobs.UnfinishedRow(f"name-{i}", "pgqueue", "queued", 1) for i in range(5)]
    snap = jobs.build_snapshot(None, finished(1, name="name-9"), rows, T0, T0, 3)
    names = {r.job_name for r in snap.unfinished}
    assert names == {"name-0", "name-1", OTHER}  # name-9 took the first place (counted first)
    assert sum(r.count for r in snap.unfinished) == 5
    assert snap.job_names == ["name-9", "name-0", "name-1"]
    cap = LabelCap(1, ["a"])
    assert (cap("a"), cap("b"), cap(""), cap("x" * 500)) == ("a", OTHER, OTHER, OTHER)
    assert LabelCap(2)("") == "unknown"


def test_distinct_names_never_share_a_label_value():
    """Names that cleaning used to merge (trimmed, cut at 120, empty vs a real `unknown`, a real
    `other` vs the overflow bucket) stay apart; ordinary names are their own value."""
    long_a, long_b = "x" * 130 + "a", "x" * 130 + "b"
    names = ["import", " import", "import ", long_a, long_b, "unknown", "", "other", None]
    values = [clean(n) for n in names]
    assert values[:3] == ["import", " import", "import "]
    assert len(set(values[:6])) == 6 and values[6] == values[8] == "unknown"
    assert values[7].startswith("other~") and values[5].startswith("unknown~")
    assert all(len(v) <= 120 for v in values)
    assert clean(long_a) == clean(long_a)  # stable across polls and sidecars


def test_jobs_stuck_and_oldest_active_by_series():
    rows = [
        jobs.UnfinishedRow("import", "temporal", "processing", 4, 2, 7200.0),
        jobs.UnfinishedRow("import", "temporal", "active", 1, 1, 9000.0),
        jobs.UnfinishedRow("import", "temporal", "queued", 10),
    ]
    metrics = render(jobs.SOURCE, jobs.build_snapshot(None, [], rows, T0, T0, 10))
    key = (("job_name", "import"), ("runner", "temporal"))
    assert metrics["jobsight_jobs_stuck"][key] == 3
    assert metrics["jobsight_job_oldest_active_age_seconds"][key] == 9000.0
    assert metrics["jobsight_jobs"][tuple(sorted((*key, ("status", "queued"))))] == 10


def test_an_emptied_job_name_reads_zero():
    """A job name that has finished jobs and none waiting or running now reads 0 queued and 0
    processing, not nothing (alerts on `> N` and rate() do not go blank)."""
    snap = jobs.build_snapshot(None, finished(2, name="import"), [], T0, T0, 10)
    gauge = render(jobs.SOURCE, snap)["jobsight_jobs"]
    runner = next(dict(k)["runner"] for k in gauge)
    for status in ("queued", "processing"):
        key = (("job_name", "import"), ("runner", runner), ("status", status))
        assert gauge[key] == 0


def test_build_from_rows_and_the_signals_it_gives() -> None:
    window = jobs.WindowStats(
        300.0,
        [
            jobs.WindowRow("import", None, 100, 5, 95, 12.0, 1_000.0),
            jobs.WindowRow("import", "1.1", 40, 4, 36, 20.0, 990.0),
        ],
    )
    stuck = jobs.UnfinishedRow("import", "temporal", "processing", 3, 2, 7200.0)
    rows = jobs.JobsRows(T0, T0, finished(3), [stuck], [window], [StuckRow("1.1", "import", 1)])
    snap = jobs.SOURCE.build(rows, None, SETTINGS_OBJ)
    assert snap.cursor == FinishedCursor(rows.finished[-1].finished_at, rows.finished[-1].job_id)
    assert [t.completed for t in snap.totals] == [3]
    signals = jobs.SOURCE.signals(snap, SETTINGS_OBJ)
    overall, canary = signals.overall, signals.by_version["1.1"]
    assert (overall.finished[300.0], canary.finished[300.0]) == (Finished(100, 5), Finished(40, 4))
    assert overall.latency[300.0] == [LatencyCandidate("import", 12.0, 100)]
    assert (overall.stuck, canary.stuck) == (2, 1)
    assert overall.last_completion[300.0] == 1_000.0
    assert overall.ready == 0  # ready work is the queues' to say
