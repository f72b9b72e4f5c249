"""Waiting on real services: poll a condition until a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[object]],
    within: float = 10.0,
    what: str = "condition",
    *,
    interval: float = 0.05,
) -> float:
    """Waits until `check()` is truthy; returns the seconds it took. Fails with `what` named
    when the deadline passes."""
    began = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - began
        if time.monotonic() - began >= within:
            raise AssertionError(f"{what}: not met within {within} s")
        await asyncio.sleep(interval)
