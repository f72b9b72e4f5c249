"""Finished jobs -> OpenTelemetry traces, exported over OTLP/HTTP (the standard OTEL_* settings:
OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT, OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES).

A trace per finished job: trace id = the job's UUID (the id the runners use for the job's own
spans), a root span from creation to finish, a child span per `job_details` row that has a start
time (an attempt or a step), messaging semantic-convention attributes, error status on failure.

It runs as one more polled "source" on the leader, with its own keyset cursor over finished
jobs (the same commit horizon as the jobs source). The cursor moves, and is stored, only after
the collector accepted the batch, so each finished job is exported once across polls, restarts and
leader changes. One window remains: a leader killed after the collector's answer and before the
cursor is stored re-exports that batch on takeover, with identical trace and span ids (span ids
are derived from the job id), which backends treat as the same spans.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import Metric

from jobsight.metric_spec import MetricSpec, single
from jobsight.settings import SidecarSettings
from jobsight.sources.base import PollContext
from jobsight.sources.jobs import FinishedCursor, commit_horizon

EXPORTED = MetricSpec(
    "jobsight_traces_exported_total", "counter", "Finished jobs exported as traces over OTLP."
)

FINISHED_JOBS = """
SELECT job_id::text AS job_id, tenant::text AS tenant, type AS job_name,
       runner_type AS runner, status::text AS status, created_at::timestamptz AS created_at,
       started_at, finished_at, attempts, error, external_id, worker_version
FROM jobs
WHERE finished_at >= $1 AND finished_at < $2 AND (finished_at, job_id) > ($1, $3::uuid)
ORDER BY finished_at, job_id
LIMIT $4
"""
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


def build_spans(job: JobRecord, details: Sequence[DetailRecord], resource: Any) -> list[Any]:
    """One job's trace as SDK ReadableSpans. Pure (no export)."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
    from opentelemetry.trace.status import Status, StatusCode

    from jobsight import __version__

    trace_id = int(job.job_id.replace("-", ""), 16)
    scope = InstrumentationScope("jobsight.exporter", __version__)
    root_context = SpanContext(
        trace_id,
        span_id(job.job_id, "job"),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    failed = job.status == "failed"
    root_attributes = {
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
            parent=None,
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
        attributes = {
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


class TracesSource:
    """Exports the traces of newly finished jobs; its snapshot is the stored cursor."""

    name = "traces"
    snapshot_type = TracesSnapshot
    metrics = (EXPORTED,)

    def __init__(self) -> None:
        self._exporter: Any = None
        self._resource: Any = None

    def _setup(self, settings: SidecarSettings) -> None:
        if self._exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource

            # Give up (and retry at the next poll) well before the poll itself times out, so an
            # abandoned export never races the next one.
            self._exporter = OTLPSpanExporter(timeout=settings.poll_timeout * 0.8)
            # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES first; "jobsight" instead of the SDK's
            # "unknown_service" when neither names one.
            resource = Resource.create()
            if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
                resource = Resource.create({"service.name": "jobsight"})
            self._resource = resource

    async def poll(self, ctx: PollContext) -> TracesSnapshot:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self._setup(ctx.settings)
        settings = ctx.settings
        previous: TracesSnapshot | None = ctx.previous
        assert ctx.pool is not None
        async with ctx.pool.acquire() as conn:
            horizon, _ = await commit_horizon(conn, settings)
            if previous is None:  # first start: from now on, never the whole history
                return TracesSnapshot(FinishedCursor(horizon))
            cursor = previous.cursor
            jobs = [
                JobRecord(**dict(r))
                for r in await conn.fetch(
                    FINISHED_JOBS,
                    cursor.finished_at,
                    horizon,
                    cursor.job_id,
                    settings.max_traces_per_poll,
                )
            ]
            if not jobs:
                return previous
            details_rows = await conn.fetch(
                DETAILS, [j.tenant for j in jobs], [j.job_id for j in jobs]
            )
        details: dict[str, list[DetailRecord]] = {}
        for row in details_rows:
            details.setdefault(row["job_id"], []).append(DetailRecord(**dict(row)))
        spans = [
            span
            for job in jobs
            for span in build_spans(job, details.get(job.job_id, []), self._resource)
        ]
        result = await asyncio.to_thread(self._exporter.export, spans)
        if result is not SpanExportResult.SUCCESS:
            raise ConnectionError(
                f"the OTLP endpoint refused or did not answer "
                f"({len(jobs)} traces wait for the next poll)"
            )
        last = jobs[-1]
        return TracesSnapshot(
            FinishedCursor(last.finished_at, last.job_id), previous.exported + len(jobs)
        )

    def render(self, snap: TracesSnapshot, settings: SidecarSettings) -> Iterable[Metric]:
        yield single(EXPORTED, snap.exported)


SOURCE = TracesSource()
