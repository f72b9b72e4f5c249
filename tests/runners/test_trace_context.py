"""One trace from the request to the job (issue 20), for both engines, through a real OTLP
receiver: an application's request span, the job's spans and the handler's own span form one
trace; a job scheduled outside any span keeps a trace whose id is its job id."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp import web

from jobsight.devstack.localstack import free_port
from jobsight.sources.finished import COUNTING_TRACED, FinishedCursor, read_finished
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.paths import ROOT


async def run_app(url: str, engine: str, endpoint: str, temporal: str) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.traced_app", url, engine, endpoint, temporal,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    report: dict = json.loads(out.decode().strip().splitlines()[-1])
    return report


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


@pytest.mark.parametrize("engine", ["pgqueue", "temporal"])
async def test_the_job_continues_the_trace_it_was_scheduled_in(
    engine: str, migrated_db: str, temporal_address: str
) -> None:
    receiver = OtlpReceiver()
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        report = await run_app(
            migrated_db, engine, f"http://127.0.0.1:{port}/v1/traces", temporal_address
        )
    finally:
        await runner.cleanup()
    assert report["completed"] == 2
    trace_id, request_id = report["trace_id"], report["request_span_id"]
    assert report["stored"].startswith(f"00-{trace_id}-{request_id}-")
    assert report["stored_untraced"] is None
    spans = [s for s in receiver.spans if s.trace_id == trace_id]
    request = one(spans, "POST /invoices")
    handler = one(spans, "render pdf")
    by_id = {s.span_id: s for s in spans}
    if engine == "pgqueue":
        job = one(spans, "generate-invoice process")
        assert job.parent_span_id == request.span_id
        assert job.attributes["messaging.message.id"] == report["traced_job"]
    else:  # the SDK's interceptor carries the request's context into the workflow
        start = one(spans, "StartWorkflow:jobsight.job")
        assert start.parent_span_id == request.span_id
        job = one(spans, "RunActivity:jobsight.run_handler")
    assert handler.parent_span_id == job.span_id  # the handler's span nests in the job's
    chain, at = [], handler  # and every span leads back to the request
    while at.parent_span_id:
        at = by_id[at.parent_span_id]
        chain.append(at.name)
    assert chain[-1] == "POST /invoices", chain
    # Scheduled outside any span: a trace of its own, whose id is the job's id.
    untraced = report["untraced_job"].replace("-", "")
    assert any(s.trace_id == untraced and s.name == "render pdf" for s in receiver.spans)
    # The sidecar's exemplars point at the same traces.
    conn = await asyncpg.connect(migrated_db)
    try:
        rows = await read_finished(
            conn, COUNTING_TRACED, FinishedCursor(datetime(2000, 1, 1, tzinfo=UTC)),
            datetime.now(UTC) + timedelta(minutes=1), 10,
        )  # fmt: skip
    finally:
        await conn.close()
    exemplar_ids = {r["job_id"]: r["trace_id"] for r in rows}
    assert exemplar_ids == {report["traced_job"]: trace_id, report["untraced_job"]: None}
