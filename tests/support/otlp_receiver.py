"""A small OTLP/HTTP receiver for the tests: decodes real protobuf ExportTraceServiceRequests
(as the OpenTelemetry Collector would) and keeps every span it was sent."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    attributes: dict[str, object]
    status_code: int  # 0 unset, 1 ok, 2 error
    start_ns: int
    end_ns: int
    service_name: str


@dataclass
class OtlpReceiver:
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    refuse: bool = False  # answer 503 (the sidecar must retry later, losing nothing)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        return app

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.refuse:
            return web.Response(status=503)
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.requests += 1
        for resource_spans in message.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.name,
                            {a.key: _value(a.value) for a in span.attributes},
                            span.status.code,
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            service,
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def roots(self) -> list[ReceivedSpan]:
        return [s for s in self.spans if not s.parent_span_id]


def _value(value) -> object:  # type: ignore[no-untyped-def]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
