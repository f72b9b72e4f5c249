"""Handlers for the chaos test's worker processes (loaded with --handlers)."""

import asyncio
import random
from datetime import timedelta

from runners import HandlerRegistry, RetryPolicy

registry = HandlerRegistry()


@registry.handler(
    "chaos",
    retry=RetryPolicy(max_attempts=50, initial_interval=timedelta(milliseconds=50)),
    timeout=timedelta(seconds=30),
)
async def chaos(ctx, data):  # type: ignore[no-untyped-def]
    await asyncio.sleep(random.uniform(0.1, 0.3))
