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
