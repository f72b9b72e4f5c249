"""The temporal source's pure steps, fed canned rows: rows -> snapshot -> metrics and signals."""

from __future__ import annotations

from typing import Any

import pytest

from jobsight.sources import temporal
from tests.support.canned import PLAIN as SETTINGS_OBJ
from tests.support.scrape import Samples, rendered


def render(source: Any, snapshot: Any) -> Samples:
    return rendered(source, snapshot, SETTINGS_OBJ)


def test_temporal_labels_and_scope():
    assert [temporal.status_label(s) for s in ("Running", "TimedOut", "ContinuedAsNew")] == [
        "running",
        "timed_out",
        "continued_as_new",
    ]
    assert temporal.scope_query(["a", "b-c"]) == 'TaskQueue IN ("a", "b-c")'
    with pytest.raises(temporal.TemporalSourceError):
        temporal.scope_query(['x" OR 1=1'])
    snap = temporal.TemporalSnapshot(
        {"running": 3}, [temporal.TaskQueueRow("q", 4, 2.5, 1, 2)], 1, {"failed": 2}
    )
    metrics = render(temporal.SOURCE, snap)
    assert (
        metrics["jobsight_temporal_task_queue_pollers"][
            (("task_queue", "q"), ("task_type", "activity"))
        ]
        == 2
    )
    assert metrics["jobsight_temporal_recent_closed_workflows"][(("status", "failed"),)] == 2


def test_build_from_rows_and_the_signals_it_gives() -> None:
    rows = temporal.TemporalRows(
        4,
        2,
        temporal.ClosedRead(0.0, [('"Completed"', 3), ("TimedOut", 1), ("Completed", 2)]),
        [temporal.TaskQueueRow("q1", 7), temporal.TaskQueueRow("q2", 3)],
    )
    snap = temporal.SOURCE.build(rows, None, SETTINGS_OBJ)
    assert snap.workflows == {"running": 4, "completed": 5, "timed_out": 1}
    assert snap.recent_closed == {"failed": 0, "timed_out": 1}  # zero is an answer too
    assert temporal.SOURCE.signals(snap, SETTINGS_OBJ).overall.ready == 10


def _payload(value: bytes, encoding: bytes = b"json/plain") -> dict[str, Any]:
    import base64

    text = base64.b64encode
    return {"metadata": {"encoding": text(encoding).decode()}, "data": text(value).decode()}


def test_answers_in_the_json_mapping() -> None:
    """Payloads (full and shorthand), durations and timestamps as Temporal's answers give them,
    whether from the HTTP API or the SDK's messages through json_format."""
    from jobsight.sources.temporal_json import payload_value, seconds_of, unix_of

    assert payload_value(_payload(b'"Running"')) == "Running"
    assert payload_value("Running") == "Running"  # the HTTP API's shorthand
    assert payload_value(_payload(b"", b"binary/null")) is None
    assert payload_value(_payload(b"\xff\x00x", b"binary/plain")) == "\ufffd\x00x"
    assert payload_value({"metadata": {"encoding": "!!"}, "data": "not base64 !"}) == ""
    assert seconds_of("2.219509996s") == pytest.approx(2.219509996)
    assert [seconds_of(v) for v in (None, "", "5m", "xs")] == [0.0, 0.0, 0.0, 0.0]
    assert unix_of("2026-11-30T11:03:50.359379631Z") == pytest.approx(1796036630.359379631)
    assert unix_of("2026-11-30T12:05:00+01:00") == unix_of("2026-11-30T11:05:00Z")
    assert [unix_of(v) for v in (None, "", "0001-01-01T00:00:00Z", "yesterday")] == [None] * 4
    answer = {"count": "3", "groups": [
        {"groupValues": [_payload(b'"Completed"')], "count": "2"},
        {"groupValues": ["TimedOut"], "count": "1"},
        {"groupValues": [], "count": "0"},
    ]}  # fmt: skip
    assert temporal.raw_groups(answer) == [("Completed", 2), ("TimedOut", 1), (None, 0)]


def test_a_schedule_described_in_the_json_mapping() -> None:
    """A DescribeSchedule answer as the dev server gives it (a cron spec the server keeps as a
    structured calendar, zero fields left out), and one of an interval with a failed last run."""
    from jobsight.sources.temporal_schedules import describe_spec, schedule_state

    every = {"start": 1, "end": 31, "step": 1}
    weekdays = [{"start": 1, "end": 5}, {"start": 0}]
    cron = {"structuredCalendar": [{
        "second": [{"step": 1}], "minute": [{"end": 59, "step": 5}], "hour": [{"end": 23}],
        "dayOfMonth": [every], "month": [{"start": 1, "end": 12}], "dayOfWeek": weekdays,
    }]}  # fmt: skip
    assert describe_spec(cron) == "0-59/5 * * * 1-5,0"
    assert describe_spec({"interval": [{"interval": "2s", "phase": "0s"}]}) == "every 0:00:02"
    assert describe_spec(None) == "" and describe_spec({"structuredCalendar": [{}]}) == "* * * * *"
    workflow_id = "jobsight-nightly-schedule-0b5c7a9e-2f0e-4d7e-9c1a-5d2a8f1e3b4c"
    described = {
        "schedule": {
            "spec": {"interval": [{"interval": "3600s"}]},
            "action": {"startWorkflow": {"workflowId": workflow_id}},
            "state": {"paused": True},
        },
        "info": {
            "futureActionTimes": ["2026-11-30T12:00:00Z", "2026-11-30T13:00:00Z"],
            "recentActions": [
                {
                    "actualTime": "2026-11-30T10:00:00.5Z",
                    "startWorkflowResult": {"workflowId": "a"},
                },
                {"actualTime": "2026-11-30T11:00:00Z", "startWorkflowResult": {"workflowId": "b"}},
            ],
            "missedCatchupWindow": "2",
            "overlapSkipped": "5",
        },
    }
    state = schedule_state("s1", described, "WORKFLOW_EXECUTION_STATUS_TIMED_OUT")
    assert (state.job_name, state.spec, state.paused) == ("nightly", "every 1:00:00", True)
    assert state.next_due == unix_of_text("2026-11-30T12:00:00Z")
    assert state.last_fire == unix_of_text("2026-11-30T11:00:00Z") and state.last_workflow == "b"
    assert (state.missed, state.skipped, state.last_failed) == (2, 5, True)
    completed = schedule_state("s1", described, "WORKFLOW_EXECUTION_STATUS_COMPLETED")
    assert completed.last_failed is False
    running = schedule_state("s1", described, "WORKFLOW_EXECUTION_STATUS_RUNNING")
    assert running.last_failed is None
    bare = schedule_state("other", {}, None)  # not jobsight's, never fired: named by its id
    assert (bare.job_name, bare.next_due, bare.last_fire, bare.missed) == ("other", None, None, 0)


def unix_of_text(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()
