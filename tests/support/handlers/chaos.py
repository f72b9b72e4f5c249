"""Handlers for the chaos test's worker processes (loaded with --handlers)."""

import asyncio
import random
from datetime import timedelta

from jobsight.runners import HandlerRegistry, RetryPolicy

registry = HandlerRegistry()


@registry.handler(
    "chaos",
    retry=RetryPolicy(max_attempts=50, initial_interval=timedelta(milliseconds=50)),
    timeout=timedelta(seconds=30),
)
async def chaos(ctx, data):  # type: ignore[no-untyped-def]
    await asyncio.sleep(random.uniform(0.1, 0.3))


@registry.handler("event-loop")
async def event_loop(ctx, data):  # type: ignore[no-untyped-def]
    """Reports, as its progress, whether it runs on uvloop (1) or not (0)."""
    on_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    await ctx.report_progress(1.0 if on_uvloop else 0.0)


@registry.handler("poison-error", retry=RetryPolicy(max_attempts=1))
async def poison_error(ctx, data):  # type: ignore[no-untyped-def]
    """Fails with text PostgreSQL cannot store as it is: a NUL, or a lone surrogate (what an
    OSError shows for a file name that is not UTF-8)."""
    if data["kind"] == "nul":
        raise RuntimeError("bad \x00 byte")
    raise OSError(2, "No such file or directory", "/data/caf\udce9.csv")


@registry.handler("tick")
async def tick(ctx, data):  # type: ignore[no-untyped-def]
    """Fired by a recurring schedule."""
