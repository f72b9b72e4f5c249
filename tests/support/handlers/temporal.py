"""Handlers for the Temporal tests' worker processes (loaded with --handlers)."""

import asyncio
import random
from datetime import timedelta

from jobsight.runners import HandlerRegistry, RetryPolicy

registry = HandlerRegistry()


@registry.handler("slow-import", retry=RetryPolicy(max_attempts=5), timeout=timedelta(seconds=60))
async def slow_import(ctx, data):  # type: ignore[no-untyped-def]
    for _ in range(int(data.get("seconds", 3) * 10)):
        await asyncio.sleep(0.1)
        await ctx.heartbeat()


@registry.handler(
    "steady",
    retry=RetryPolicy(max_attempts=30, initial_interval=timedelta(milliseconds=200)),
    timeout=timedelta(seconds=30),
)
async def steady(ctx, data):  # type: ignore[no-untyped-def]
    """A short job for load across faults."""
    await asyncio.sleep(random.uniform(0.1, 0.3))
