"""jobsight's Temporal engine as a peer of bench/temporal_throughput.py: a no-op handler (the
worker is the real `jobsight worker --runner temporal` command)."""

from __future__ import annotations

from jobsight.runners import HandlerRegistry

registry = HandlerRegistry()


@registry.handler("noop")
async def noop(ctx, data):  # type: ignore[no-untyped-def]
    return None
