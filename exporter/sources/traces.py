"""Finished jobs -> OpenTelemetry traces, exported over OTLP/HTTP (the standard OTEL_* settings:
OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT, OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES).

A trace per finished job: trace id = the job's UUID (the id the runners use for the job's own
spans), a root span from creation to finish, a child span per `job_details` row that has a start
time (an attempt or a step), messaging semantic-convention attributes, error status on failure.

It is a source like the others (fetch rows, build the snapshot: its cursor), with one step more:
its poll exports the spans built from the rows. It has its own keyset cursor over finished jobs
(the same reader and commit horizon as the jobs source, sources/finished.py). The cursor moves,
and is stored, only after the collector accepted the batch, so each finished job is exported
once across polls, restarts and leader changes. One window remains: a leader killed after the
collector's answer and before the cursor is stored re-exports that batch on takeover, with
identical trace and span ids (span ids are derived from the job id), which backends treat as the
same spans.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from jobsight.metric_spec import MetricSpec, single
from jobsight.settings import SidecarSettings
from jobsight.sources.base import PollContext, RowSource
from jobsight.sources.finished import TRACING, FinishedCursor, commit_horizon, read_finished

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext
    from opentelemetry.util.types import AttributeValue

EXPORTED = MetricSpec(
    "jobsight_traces_exported_total", "counter", "Finished jobs exported as traces over OTLP."
)

DETAILS = """
SELECT d.job_id::text AS job_id, d.step_name, d.status::text AS status, d.attempt,
       d.started_at, d.finished_at, d.error, d.worker_version
FROM job_details d
JOIN unnest($1::uuid[], $2::uuid[]) AS k(tenant, job_id)
  ON d.tenant = k.tenant AND d.job_id = k.job_id
WHERE d.started_at IS NOT NULL
ORDER BY d.job_id, d.started_at
"""


@dataclass
class TracesSnapshot:
    cursor: FinishedCursor
    exported: int = 0


@dataclass
class JobRecord:
    job_id: str
    tenant: str
    job_name: str
    runner: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime
    attempts: int | None
    error: str | None
    external_id: str | None
    worker_version: str | None
    trace_context: str | None = None  # the scheduling span's traceparent, when it had one


@dataclass
class DetailRecord:
    job_id: str
    step_name: str
    status: str
    attempt: int | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    worker_version: str | None


def span_id(job_id: str, part: str) -> int:
    """A stable, non-zero 64-bit span id for a part of a job's trace."""
    value = int.from_bytes(hashlib.sha256(f"{job_id}/{part}".encode()).digest()[:8], "big")
    return value or 1


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def scheduling_span(traceparent: str | None) -> SpanContext | None:
    """The span a job was scheduled in, from its stored W3C traceparent (None if none, or if
    it does not parse)."""
    if not traceparent:
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    found = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    context = trace.get_current_span(found).get_span_context()
    return context if context.is_valid else None


def build_spans(
    job: JobRecord, details: Sequence[DetailRecord], resource: Resource
) -> list[ReadableSpan]:
    """One job's trace as SDK ReadableSpans. Pure (no export)."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
    from opentelemetry.trace.status import Status, StatusCode

    from jobsight import __version__

    trace_id, parent = int(job.job_id.replace("-", ""), 16), None
    scheduled_in = scheduling_span(job.trace_context)
    if scheduled_in is not None:  # the job continues the trace it was scheduled in
        trace_id, parent = scheduled_in.trace_id, scheduled_in
    scope = InstrumentationScope("jobsight.exporter", __version__)
    root_context = SpanContext(
        trace_id,
        span_id(job.job_id, "job"),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    failed = job.status == "failed"
    root_attributes: dict[str, AttributeValue] = {
        "messaging.system": f"jobsight.{job.runner}",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": job.job_name,
        "messaging.message.id": job.job_id,
        "jobsight.job.status": job.status,
        "jobsight.job.runner": job.runner,
        "jobsight.job.attempts": job.attempts or 0,
    }
    if job.external_id:
        root_attributes["jobsight.job.external_id"] = job.external_id
    if job.worker_version:
        root_attributes["service.version"] = job.worker_version
    if failed and job.error:
        root_attributes["error.type"] = "job_failed"
    spans = [
        ReadableSpan(
            name=f"process {job.job_name}",
            context=root_context,
            parent=parent,
            resource=resource,
            attributes=root_attributes,
            kind=SpanKind.CONSUMER,
            status=Status(StatusCode.ERROR, (job.error or "failed")[:500])
            if failed
            else Status(StatusCode.UNSET),
            start_time=_ns(min(job.created_at, job.finished_at)),
            end_time=_ns(job.finished_at),
            instrumentation_scope=scope,
        )
    ]
    for index, detail in enumerate(details):
        part = f"attempt-{detail.attempt}" if detail.attempt else f"step-{index}"
        attributes: dict[str, AttributeValue] = {
            "messaging.system": f"jobsight.{job.runner}",
            "messaging.operation.type": "process",
            "messaging.destination.name": job.job_name,
            "messaging.message.id": job.job_id,
            "jobsight.step": detail.step_name,
            "jobsight.step.status": detail.status,
        }
        if detail.attempt:
            attributes["jobsight.attempt"] = detail.attempt
        if detail.worker_version:
            attributes["service.version"] = detail.worker_version
        end = detail.finished_at or job.finished_at
        detail_failed = detail.status == "failed"
        spans.append(
            ReadableSpan(
                name=f"{detail.step_name} {detail.attempt or ''}".strip(),
                context=SpanContext(
                    trace_id,
                    span_id(job.job_id, part),
                    is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                ),
                parent=root_context,
                resource=resource,
                attributes=attributes,
                kind=SpanKind.INTERNAL,
                status=Status(StatusCode.ERROR, (detail.error or "failed")[:500])
                if detail_failed
                else Status(StatusCode.UNSET),
                start_time=_ns(detail.started_at),
                end_time=_ns(max(end, detail.started_at)),
                instrumentation_scope=scope,
            )
        )
    return spans


@dataclass
class TracesRows:
    horizon: datetime
    jobs: list[JobRecord] = field(default_factory=list)
    details: dict[str, list[DetailRecord]] = field(default_factory=dict)  # job id -> its rows


class TracesSource(RowSource[TracesRows, TracesSnapshot]):
    """Exports the traces of newly finished jobs; its snapshot is the stored cursor."""

    name = "traces"
    snapshot_type = TracesSnapshot
    metrics = (EXPORTED,)

    async def fetch(self, ctx: PollContext[TracesSnapshot]) -> TracesRows:
        settings = ctx.settings
        async with ctx.require_pool().acquire() as conn:
            horizon, _ = await commit_horizon(conn, settings)
            if ctx.previous is None:  # first start: from now on, never the whole history
                return TracesRows(horizon)
            jobs = await read_finished(
                conn, TRACING, ctx.previous.cursor, horizon, settings.max_traces_per_poll
            )
            records = [JobRecord(**r) for r in jobs]
            details = (
                await conn.fetch(DETAILS, [j.tenant for j in records], [j.job_id for j in records])
                if records
                else []
            )
        by_job: dict[str, list[DetailRecord]] = {}
        for row in details:
            by_job.setdefault(row["job_id"], []).append(DetailRecord(**row))
        return TracesRows(horizon, records, by_job)

    def build(
        self, rows: TracesRows, previous: TracesSnapshot | None, settings: SidecarSettings
    ) -> TracesSnapshot:
        """The cursor after these rows (once they are exported), and the running count."""
        if previous is None:
            return TracesSnapshot(FinishedCursor(rows.horizon))
        if not rows.jobs:
            return previous
        last = rows.jobs[-1]
        return TracesSnapshot(
            FinishedCursor(last.finished_at, last.job_id), previous.exported + len(rows.jobs)
        )

    async def poll(self, ctx: PollContext[TracesSnapshot]) -> TracesSnapshot:
        """fetch, build, then export: the new cursor is returned (and stored) only once the
        collector has accepted the spans."""
        rows = await self.fetch(ctx)
        snapshot = self.build(rows, ctx.previous, ctx.settings)
        if rows.jobs:
            await _export(ctx, spans_of(rows, _resource(ctx)))
        return snapshot

    def render(self, snap: TracesSnapshot, settings: SidecarSettings) -> Iterable[Metric]:
        yield single(EXPORTED, snap.exported)


def _resource(ctx: PollContext[TracesSnapshot]) -> Resource:
    """The resource of every span (kept among the poller's clients)."""
    resource: Resource | None = ctx.clients.get("otel-resource")
    if resource is None:
        from opentelemetry.sdk.resources import Resource

        # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES first; "jobsight" instead of the SDK's
        # "unknown_service" when neither names one.
        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = Resource.create({"service.name": "jobsight"})
        ctx.clients["otel-resource"] = resource
    return resource


async def _export(ctx: PollContext[TracesSnapshot], spans: list[ReadableSpan]) -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult

    exporter = ctx.clients.get("otlp")
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Give up (and retry at the next poll) well before the poll itself times out, so an
        # abandoned export never races the next one.
        exporter = ctx.clients["otlp"] = OTLPSpanExporter(timeout=ctx.settings.poll_timeout * 0.8)
    result = await asyncio.to_thread(exporter.export, spans)
    if result is not SpanExportResult.SUCCESS:
        raise ConnectionError(
            f"the OTLP endpoint refused or did not answer ({len(spans)} spans wait for the "
            "next poll)"
        )


def spans_of(rows: TracesRows, resource: Resource) -> list[ReadableSpan]:
    return [
        span
        for job in rows.jobs
        for span in build_spans(job, rows.details.get(job.job_id, []), resource)
    ]


SOURCE = TracesSource()
