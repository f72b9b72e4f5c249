"""The health-gateway tests' handlers: one that succeeds, one that fails, one slow, one that
hangs (shared with the end-to-end monitoring test)."""

from __future__ import annotations

import asyncio

from jobsight.runners import HandlerRegistry, RetryPolicy


def registry() -> HandlerRegistry:
    reg = HandlerRegistry()

    @reg.handler("generate-invoice")
    async def fine(ctx, data):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.01)

    @reg.handler("asset_import", retry=RetryPolicy(max_attempts=1))
    async def broken(ctx, data):  # type: ignore[no-untyped-def]
        raise ValueError("corrupt asset")

    @reg.handler("invoice_zip")
    async def slow(ctx, data):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.6)

    @reg.handler("credit-reconciliation", timeout=None)
    async def hangs(ctx, data):  # type: ignore[no-untyped-def]
        await asyncio.sleep(3600)

    return reg
