"""One trace from the request to the job (OpenTelemetry, W3C trace context).

A job scheduled inside a span stores that span's `traceparent` with the job; the job's spans then
continue the trace: the pgqueue worker's span is a child of the scheduling span, and the Temporal
engine lets the SDK's TracingInterceptor carry the same context into the workflow and activity.
Child, not link: OpenTelemetry's messaging conventions let a consumer that processes one message
on its own parent its span to the message's creation context, and a job is exactly one message
processed on its own; one trace is what an operator following a request expects to open. A job
scheduled outside a span keeps a trace of its own whose id is its job id (what the sidecar's
traces and exemplars use). The handler runs inside the job's span, so its own spans nest under
it. Without an OpenTelemetry SDK configured by the application, all of this costs nothing: the
OpenTelemetry API is imported only once the application has loaded it (a pgqueue worker that
does not trace stays small)."""

from __future__ import annotations

import contextlib
import random
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry import context as otel_context

TRACER = "jobsight.runners"


def _loaded() -> bool:
    """Whether the application uses OpenTelemetry at all (it imported the API)."""
    return "opentelemetry.trace" in sys.modules


def current_traceparent() -> str | None:
    """The active span's W3C traceparent, or None outside a (valid) span."""
    if not _loaded():
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def job_context(job_id: uuid.UUID, traceparent: str | None) -> otel_context.Context:
    """The context a job's spans start in: the scheduling span's, when it had one, else a remote
    parent whose trace id is the job id."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if traceparent:
        found = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        if trace.get_current_span(found).get_span_context().is_valid:
            return found
    parent = trace.NonRecordingSpan(trace.SpanContext(
        trace_id=job_id.int, span_id=random.getrandbits(63) | 1, is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    ))  # fmt: skip
    return trace.set_span_in_context(parent)


@contextlib.contextmanager
def in_job_context(job_id: uuid.UUID, traceparent: str | None = None) -> Iterator[None]:
    """Makes the job's context current (for the Temporal SDK's interceptor to carry on)."""
    from opentelemetry import context as otel_context

    token = otel_context.attach(job_context(job_id, traceparent))
    try:
        yield
    finally:
        otel_context.detach(token)


def tracing_configured() -> bool:
    """Whether the application set a tracer provider (without one, no span is recorded, so
    the worker skips making them: 13 us a job on its hot path)."""
    if not _loaded():
        return False
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@contextlib.contextmanager
def job_span(
    job_name: str, job_id: uuid.UUID, attempt: int, traceparent: str | None
) -> Iterator[None]:
    """The span of one attempt of a job, current while its handler runs (callers on a hot path
    check tracing_configured() first: without a provider the span would record nothing)."""
    from opentelemetry import trace

    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(
        f"{job_name} process",
        context=job_context(job_id, traceparent),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "jobsight",
            "messaging.operation.type": "process",
            "messaging.destination.name": job_name,
            "messaging.message.id": str(job_id),
            "jobsight.attempt": attempt,
        },
    ):
        yield
