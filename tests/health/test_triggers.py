"""Triggers, hold times and the verdict as pure functions, fed canned snapshots. No I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobsight.health.specs import TRIGGERS, VERSION_AWARE
from jobsight.health.state import State
from jobsight.health.triggers import TRIGGER_FUNCTIONS, compare
from jobsight.health.verdict import Evaluator, HeldState, hold, measure, unheld_verdict, worst
from jobsight.settings import SettingError, SidecarSettings, load_settings
from jobsight.sources import jobs, pgboss, pgqueue
from jobsight.sources.status import SourceStatus, SourceView
from jobsight.sources.versions import StuckRow
from tests.support.canned import BASE, NOW, views, window_row


def states(
    v: dict[str, SourceView], settings: SidecarSettings = BASE, version: str | None = None
) -> dict[str, str]:
    return {name: m.state for name, m in measure(v, settings, NOW, version).items()}


def test_compare_follows_the_design_table():
    assert compare(0.01, 0.01, 0.05, False) == "ok"  # > 1%, not >=
    assert compare(0.011, 0.01, 0.05, False) == "degraded"
    assert compare(0.051, 0.01, 0.05, False) == "rollback"
    assert compare(0.95, 0.80, 0.95, True) == "rollback"  # DB connections: >= 95%
    assert compare(5.0, 0, None, False) == "degraded"  # stuck jobs only degrade


def test_everything_ok_on_a_quiet_system():
    assert set(states(views([window_row("a", 100, 0)]))) == {
        "error_rate",
        "queue_depth",
        "worker_crashes",
        "db_connections",
        "latency_p95",
        "stuck_jobs",
        "stalled",
        "schedule_missed",
    }
    assert set(states(views([window_row("a", 100, 0)])).values()) == {"ok"}


@pytest.mark.parametrize(("failed", "state"), [(1, "ok"), (2, "degraded"), (6, "rollback")])
def test_error_rate(failed: int, state: str):
    assert states(views([window_row("a", 100, failed)]))["error_rate"] == state


def test_error_rate_needs_its_minimum_sample_and_counts_pg_boss():
    assert states(views([window_row("a", 10, 5)]))["error_rate"] == "ok"  # 10 < 20
    m = measure(views([window_row("a", 10, 0)], boss_finished=(20, 5)), BASE, NOW)["error_rate"]
    assert (m.state, m.value, m.sample) == ("rollback", pytest.approx(5 / 30), 30)


def test_queue_depth_adds_every_engine():
    ready = [pgqueue.QueueRow("a", "created", 700, 600)]
    boss = [pgboss.BossQueueRow("emails", ready=300)]
    m = measure(views(queue_rows=ready, boss_queues=boss, backlog=200), BASE, NOW)["queue_depth"]
    assert (m.value, m.state) == (1100, "degraded")
    assert states(views(queue_rows=ready, backlog=5000))["queue_depth"] == "rollback"


def test_worker_crashes_db_connections_stuck():
    assert states(views(crashes=1))["worker_crashes"] == "degraded"
    assert states(views(crashes=11))["worker_crashes"] == "rollback"
    assert states(views(in_use=81))["db_connections"] == "degraded"
    assert states(views(in_use=95))["db_connections"] == "rollback"
    stuck = [jobs.UnfinishedRow("import", "temporal", "processing", 3, 1, 4000.0)]
    assert states(views(unfinished=stuck))["stuck_jobs"] == "degraded"


def test_latency_uses_the_worst_name_and_per_name_overrides():
    rows = [window_row("import", 50, 0, p95=200.0), window_row("email", 50, 0, p95=40.0)]
    m = measure(views(rows), BASE, NOW)["latency_p95"]
    assert (m.state, m.value, m.detail) == ("rollback", 200.0, "worst: import")
    relaxed = replace(
        BASE,
        triggers={
            **BASE.triggers,
            "latency_p95": replace(
                BASE.triggers["latency_p95"], overrides=(("import", 600.0, 1800.0),)
            ),
        },
    )
    m = measure(views(rows), relaxed, NOW)["latency_p95"]
    assert (m.state, m.value, m.detail) == ("degraded", 40.0, "worst: email")


def test_stalled_when_work_is_ready_and_nothing_completes():
    ready = [pgqueue.QueueRow("a", "created", 5, 5)]
    fresh = views([window_row("a", 5, 0, last=NOW - 30)], queue_rows=ready)
    assert measure(fresh, BASE, NOW)["stalled"].state == "ok"
    stale = views([window_row("a", 5, 0, last=NOW - 400)], queue_rows=ready)
    m = measure(stale, BASE, NOW)["stalled"]
    assert (m.state, round(m.value)) == ("degraded", 400)
    assert measure(views([], queue_rows=ready), BASE, NOW)["stalled"].value == 600.0
    assert measure(views([]), BASE, NOW)["stalled"].state == "ok"  # nothing ready: not stalled


def test_down_or_stale_source_makes_its_triggers_unknown():
    v = views([window_row("a", 100, 0)])
    v["postgres"] = SourceView(
        v["postgres"].snapshot, SourceStatus(False, NOW - 5, NOW, 0.1, "OSError: refused")
    )
    v["pgboss"] = SourceView(v["pgboss"].snapshot, SourceStatus(True, NOW - 3600, NOW - 3600))
    got = measure(v, BASE, NOW)
    assert got["db_connections"].state == "unknown" and "refused" in got["db_connections"].detail
    assert got["error_rate"].state == "unknown" and "stale" in got["error_rate"].detail
    assert got["queue_depth"].state == "unknown"


def test_triggers_without_an_enabled_source_are_disabled():
    only_jobs = replace(BASE, sources=("jobs",))
    got = states(views([window_row("a", 100, 0)]), only_jobs)
    assert got["db_connections"] == "disabled" and got["worker_crashes"] == "disabled"
    assert got["error_rate"] == "ok"


def test_canary_scope_judges_the_versions_own_jobs():
    rows = [
        window_row("a", 200, 2),
        window_row("a", 100, 0, version="1.0"),
        window_row("a", 100, 2 * 10, version="1.1"),
    ]
    stuck = [jobs.UnfinishedRow("a", "pgqueue", "processing", 1, 1, 9000.0)]
    v = views(rows, unfinished=stuck, stuck=[StuckRow("1.0", "a", 1)])
    assert states(v)["error_rate"] == "ok"  # 1% overall
    assert states(v, version="1.1")["error_rate"] == "rollback"  # 20% on the canary
    assert states(v, version="1.0")["stuck_jobs"] == "degraded"
    assert states(v, version="1.1")["stuck_jobs"] == "ok"


def test_a_canary_without_evidence_never_passes():
    """A mistyped or idle version is unknown; one below the minimum sample is inconclusive;
    with the sample, it is judged."""
    rows = [
        window_row("a", 500, 0),
        window_row("a", 5, 0, version="2.0-few"),  # error_rate needs 20 finished jobs
        window_row("a", 40, 0, version="2.0-enough"),
    ]
    v = views(rows)
    typo = measure(v, BASE, NOW, "2.0-typo")
    assert {typo[name].state for name in VERSION_AWARE} == {State.UNKNOWN}
    assert "has no jobs in the window" in typo["error_rate"].detail
    assert unheld_verdict(BASE, v, NOW, "2.0-typo").verdict == State.UNKNOWN
    few = measure(v, BASE, NOW, "2.0-few")
    assert few["error_rate"].state == State.INCONCLUSIVE
    assert few["error_rate"].detail == "5 finished jobs of this version, 20 needed to judge"
    assert unheld_verdict(BASE, v, NOW, "2.0-few").verdict == State.INCONCLUSIVE
    assert unheld_verdict(BASE, v, NOW, "2.0-enough").verdict == State.OK
    assert unheld_verdict(BASE, v, NOW, None).verdict == State.OK  # the global scope as before
    assert worst([State.OK, State.INCONCLUSIVE]) == State.INCONCLUSIVE
    assert worst([State.INCONCLUSIVE, State.DEGRADED]) == State.DEGRADED


def test_hold_time_prevents_flapping():
    first = hold(None, "ok", 0, 30)
    assert first == HeldState("ok", 0, known=True)
    pending = hold(first, "rollback", 10, 30)
    assert (pending.state, pending.candidate) == ("ok", "rollback")
    assert hold(pending, "rollback", 39, 30).state == "ok"
    promoted = hold(hold(pending, "rollback", 39, 30), "rollback", 40, 30)
    assert (promoted.state, promoted.since) == ("rollback", 40)
    blip = hold(hold(promoted, "ok", 50, 30), "rollback", 55, 30)  # back before the hold ran out
    assert (blip.state, blip.since, blip.candidate) == ("rollback", 40, None)
    assert hold(first, "degraded", 5, 0).state == "degraded"  # no hold


def test_the_first_known_state_after_start_is_not_held():
    """A sidecar (re)started mid-rollout: unknown until its first polls land, then the state
    they show at once (a gate is not halted for a hold time); later changes are held."""
    start = hold(None, State.UNKNOWN, 0, 30)
    assert hold(start, State.UNKNOWN, 3, 30).state == State.UNKNOWN
    first = hold(start, State.OK, 4, 30)
    assert (first.state, first.since, first.known) == (State.OK, 4, True)
    outage = hold(first, State.UNKNOWN, 10, 30)  # a known state changes with the hold
    assert outage.state == State.OK and outage.candidate == State.UNKNOWN
    gone = hold(outage, State.UNKNOWN, 40, 30)
    assert gone.state == State.UNKNOWN and gone.known
    assert hold(gone, State.OK, 41, 30).state == State.UNKNOWN  # back: held like any change


def test_verdict_is_the_worst_state():
    assert worst(["ok", "degraded", "disabled"]) == "degraded"
    assert worst(["ok", "unknown", "degraded"]) == "unknown"
    assert worst(["unknown", "rollback"]) == "rollback"
    assert worst(["disabled"]) == "unknown"


def test_the_evaluator_holds_per_scope():
    settings = replace(BASE, triggers={k: replace(c, hold=30.0) for k, c in BASE.triggers.items()})
    evaluator = Evaluator(settings)
    calm = views([window_row("a", 100, 0), window_row("a", 100, 0, version="1.0")])
    failing = views([window_row("a", 100, 50), window_row("a", 100, 50, version="1.0")])
    first = evaluator.evaluate(calm, NOW)
    assert set(first) == {None, "1.0"}  # the global scope and every version with jobs
    assert first[None].verdict == first["1.0"].verdict == State.OK
    assert evaluator.evaluate(failing, NOW + 5)[None].verdict == "ok"  # held
    later = evaluator.evaluate(failing, NOW + 40)
    assert later[None].verdict == later["1.0"].verdict == State.ROLLBACK
    error_rate = next(t for t in later[None].triggers if t.name == "error_rate")
    assert error_rate.since == NOW + 40
    # A version the poller does not hold (no jobs in the window) is measured as it is now:
    # with no evidence, unknown, never ok.
    assert unheld_verdict(settings, failing, NOW + 41, "9.9").verdict == "unknown"


def test_requests_for_other_versions_cannot_reset_a_canarys_hold():
    """Scopes are the versions that ran jobs; asking for 40 others (what /verdict?version= does
    for a scope the poller does not hold) creates no state, so the canary's hold runs on."""
    settings = replace(BASE, triggers={k: replace(c, hold=30.0) for k, c in BASE.triggers.items()})
    evaluator = Evaluator(settings)
    calm = views([window_row("a", 100, 0, version="1.0")])
    failing = views([window_row("a", 100, 50, version="1.0")])
    evaluator.evaluate(calm, NOW)
    assert evaluator.evaluate(failing, NOW + 5)["1.0"].verdict == State.OK  # held, pending
    for n in range(40):
        assert unheld_verdict(settings, failing, NOW + 6, f"junk-{n}").verdict == State.UNKNOWN
    assert evaluator.evaluate(failing, NOW + 20)["1.0"].verdict == State.OK  # still held
    assert evaluator.evaluate(failing, NOW + 36)["1.0"].verdict == State.ROLLBACK  # on time


def test_every_trigger_spec_has_a_function():
    assert set(TRIGGER_FUNCTIONS) == {spec.name for spec in TRIGGERS}


def test_threshold_settings_are_validated():
    with pytest.raises(SettingError, match="JOBSIGHT_ERROR_RATE_DEGRADED: must be a ratio"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d", "JOBSIGHT_ERROR_RATE_DEGRADED": "7"})
    with pytest.raises(SettingError, match="JOBSIGHT_QUEUE_DEPTH_ROLLBACK: must not be below"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d", "JOBSIGHT_QUEUE_DEPTH_ROLLBACK": "5"})
    with pytest.raises(SettingError, match="JOBSIGHT_LATENCY_P95_OVERRIDES"):
        load_settings(
            {"DATABASE_URL": "postgresql://u@h/d", "JOBSIGHT_LATENCY_P95_OVERRIDES": "import"}
        )
    with pytest.raises(SettingError, match="JOBSIGHT_READINESS_FAIL_ON"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d", "JOBSIGHT_READINESS_FAIL_ON": "x"})
    ok = load_settings(
        {
            "DATABASE_URL": "postgresql://u@h/d",
            "JOBSIGHT_ERROR_RATE_ROLLBACK": "10%",
            "JOBSIGHT_TRIGGER_HOLD": "0",
            "JOBSIGHT_STALLED_HOLD": "2m",
        }
    )
    assert ok.triggers["error_rate"].rollback == 0.1
    assert ok.triggers["error_rate"].hold == 0 and ok.triggers["stalled"].hold == 120


def test_a_schedule_past_due_and_not_fired_degrades_after_its_grace():
    """pgqueue fires schedules from its workers' maintenance: none running, none fires."""
    due = [pgqueue.ScheduleRow("nightly-report", NOW - 301, NOW - 86_400)]
    v = views([window_row("a", 100, 0)])
    v["pgqueue"] = replace(v["pgqueue"], snapshot=pgqueue.PgQueueSnapshot(schedules=due))
    found = measure(v, BASE, NOW)["schedule_missed"]
    assert found.state == "degraded" and "nightly-report due 301 s ago" in found.detail
    soon = [pgqueue.ScheduleRow("nightly-report", NOW + 60, NOW - 86_340)]
    v["pgqueue"] = replace(v["pgqueue"], snapshot=pgqueue.PgQueueSnapshot(schedules=soon))
    assert measure(v, BASE, NOW)["schedule_missed"].state == "ok"
    late_but_within_grace = [pgqueue.ScheduleRow("x", NOW - 30, None)]
    v["pgqueue"] = replace(
        v["pgqueue"], snapshot=pgqueue.PgQueueSnapshot(schedules=late_but_within_grace)
    )
    assert measure(v, BASE, NOW)["schedule_missed"].state == "ok"
