"""An application that traces its requests (run as its own process by tests/runners/
test_trace_context.py, so that its global tracer provider is its own): it schedules one job
inside a request's span and one outside any span, on pgqueue or Temporal, lets its worker run
them (the handler makes a span of its own), flushes its spans to an OTLP receiver and prints
what it did as JSON.

    python -m tests.support.traced_app DATABASE_URL ENGINE OTLP_ENDPOINT [TEMPORAL_ADDRESS]
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import asyncpg
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from jobsight.runners import HandlerRegistry

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000d4")


async def main(url: str, engine: str, endpoint: str, temporal_address: str = "") -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "billing-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("billing-app")
    registry = HandlerRegistry()

    @registry.handler("generate-invoice")
    async def invoice(ctx, data):  # type: ignore[no-untyped-def]
        with tracer.start_as_current_span("render pdf"):
            await asyncio.sleep(0.01)

    if engine == "temporal":
        from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings

        settings = TemporalSettings(
            address=temporal_address, task_queue=f"tr-{uuid.uuid4().hex[:8]}"
        )
        runner = TemporalJobRunner(url, registry, settings)
    else:
        from jobsight.runners.pgqueue import PgQueueJobRunner

        runner = PgQueueJobRunner(url, registry)
    await runner.start()
    with tracer.start_as_current_span("POST /invoices") as request:
        traced = await runner.schedule_job("generate-invoice", {"n": 1}, tenant=TENANT)
    untraced = await runner.schedule_job("generate-invoice", {"n": 2}, tenant=TENANT)
    conn = await asyncpg.connect(url)
    try:
        for _ in range(400):
            done = await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE job_id = ANY($1::uuid[]) AND status = 'completed'",
                [traced.job_id, untraced.job_id],
            )
            if done == 2:
                break
            await asyncio.sleep(0.05)
        stored = await conn.fetchval(
            "SELECT trace_context FROM jobs WHERE job_id = $1", traced.job_id
        )
        stored_untraced = await conn.fetchval(
            "SELECT trace_context FROM jobs WHERE job_id = $1", untraced.job_id
        )
    finally:
        await conn.close()
    await asyncio.sleep(0.5)  # the workflow's last spans end as it completes
    await runner.stop(grace=2)
    provider.shutdown()
    context = request.get_span_context()
    print(json.dumps({
        "completed": done,
        "trace_id": f"{context.trace_id:032x}",
        "request_span_id": f"{context.span_id:016x}",
        "traced_job": str(traced.job_id),
        "untraced_job": str(untraced.job_id),
        "stored": stored,
        "stored_untraced": stored_untraced,
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
