"""The traces source's pure steps: the cursor it builds from the rows, the spans of each job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.resources import Resource

from jobsight.settings import SidecarSettings
from jobsight.sources import traces
from jobsight.sources.finished import FinishedCursor

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = SidecarSettings(database_url="postgresql://x@localhost/db", traces=True)


def job(i: int, status: str = "completed") -> traces.JobRecord:
    return traces.JobRecord(
        f"0190a5e0-0000-7000-8000-{i:012d}",
        "00000000-0000-0000-0000-000000000001",
        "import",
        "pgqueue",
        status,
        T0,
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=2 + i),
        1,
        "boom" if status == "failed" else None,
        None,
        "1.0",
    )


def test_the_first_poll_starts_at_the_horizon_and_later_ones_follow_the_rows() -> None:
    first = traces.SOURCE.build(traces.TracesRows(T0), None, SETTINGS)
    assert first == traces.TracesSnapshot(FinishedCursor(T0))
    rows = traces.TracesRows(T0 + timedelta(minutes=1), [job(0), job(1, "failed")])
    second = traces.SOURCE.build(rows, first, SETTINGS)
    assert second.cursor == FinishedCursor(rows.jobs[-1].finished_at, rows.jobs[-1].job_id)
    assert second.exported == 2
    assert traces.SOURCE.build(traces.TracesRows(T0), second, SETTINGS) is second


def test_each_job_is_a_trace_with_a_span_per_attempt() -> None:
    detail = traces.DetailRecord(
        job(1).job_id, "attempt", "failed", 1, T0 + timedelta(seconds=1), None, "boom", "1.0"
    )
    rows = traces.TracesRows(T0, [job(0), job(1, "failed")], {job(1).job_id: [detail]})
    spans = traces.spans_of(rows, Resource.create({"service.name": "test"}))
    assert len(spans) == 3
    assert {s.context.trace_id for s in spans} == {
        int(j.job_id.replace("-", ""), 16) for j in rows.jobs
    }
    failed_root = next(
        s for s in spans if s.parent is None and s.status.status_code.name == "ERROR"
    )
    assert failed_root.attributes["messaging.destination.name"] == "import"


def test_a_job_scheduled_in_a_span_continues_that_trace() -> None:
    """The stored traceparent makes the job's spans part of the trace it was scheduled in; a
    traceparent that does not parse is ignored (the job keeps its own trace)."""
    from dataclasses import replace

    producer_trace, producer_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traced = replace(job(2), trace_context=f"00-{producer_trace}-{producer_span}-01")
    spans = traces.spans_of(traces.TracesRows(T0, [traced]), Resource.create({}))
    root = next(s for s in spans if s.name == "process import")
    assert root.context.trace_id == int(producer_trace, 16)
    assert root.parent is not None and root.parent.span_id == int(producer_span, 16)
    assert {s.context.trace_id for s in spans} == {int(producer_trace, 16)}
    broken = replace(job(3), trace_context="00-not-a-traceparent")
    [own] = traces.spans_of(traces.TracesRows(T0, [broken]), Resource.create({}))
    assert own.context.trace_id == int(broken.job_id.replace("-", ""), 16) and own.parent is None
