"""Sample handlers: the job names of the seed applications, with simulated work.

They back the demo (`make run`) and show how to write your own: a handler is an async function
of (context, data); it reports progress, calls `heartbeat()` during long work, and raises to fail
an attempt (the engine retries it, then fails the job). Run them on either engine:

    jobsight worker --runner pgqueue --handlers jobsight.runners.examples.demo_handlers:registry

Durations are short; a few percent of the attempts fail and are retried, and jobs sent with
{"poison": true} fail every attempt, so dashboards have something to show.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from jobsight.runners import HandlerRegistry, RetryPolicy
from jobsight.runners.interface import Handler, JobContext

# The billing application's jobs (seed 000) run on pgqueue in the demo; the evaluation service's
# jobs (seed 001) on Temporal.
PGQUEUE_JOBS = {  # name: (typical seconds, failure rate)
    "generate-invoice": (0.4, 0.02),
    "asset_import": (1.5, 0.08),
    "expired-credits": (0.2, 0.0),
    "expiring-credits-notification": (0.3, 0.01),
    "credit-reconciliation": (0.8, 0.03),
    "invoice_zip": (1.0, 0.02),
    "invoice_email": (0.2, 0.04),
    "reconcile-bucket-usage": (0.6, 0.02),
    "cleanup-temporary-workflow-forms": (0.1, 0.0),
}
TEMPORAL_JOBS = {
    "evaluation": (0.8, 0.03),
    "batch": (0.3, 0.01),
    "import": (2.0, 0.05),
    "cleanup": (0.2, 0.0),
}
QUICK_RETRY = RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=1))

FanOut = Callable[[list[str]], Awaitable[None]]


class SimulatedFailure(RuntimeError):
    """What a demo job raises when the dice say it fails."""


def simulated(name: str, seconds: float, failure_rate: float, rng: random.Random) -> Handler:
    async def handler(ctx: JobContext, data: dict[str, Any]) -> None:
        duration = rng.lognormvariate(0, 0.5) * seconds
        steps = max(1, int(duration / 0.5))
        for step in range(steps):
            await asyncio.sleep(duration / steps)
            await ctx.report_progress((step + 1) / steps)
        if data.get("poison"):  # a bad input: every attempt fails, the job ends failed
            raise SimulatedFailure(f"{name}: cannot process this input")
        if rng.random() < failure_rate:  # a transient fault: a retry usually succeeds
            raise SimulatedFailure(f"{name}: simulated failure (attempt {ctx.attempt})")

    handler.__name__ = name.replace("-", "_")
    return handler


def build_registry(
    jobs: dict[str, tuple[float, float]],
    fan_out: FanOut | None = None,
    seed: int | None = None,
) -> HandlerRegistry:
    """Handlers for `jobs`; `batch` hands its evaluation ids to `fan_out` (each becomes an
    `evaluation` job) when given one, else evaluates them itself."""
    rng = random.Random(seed)
    registry = HandlerRegistry()
    for name, (seconds, failure_rate) in jobs.items():
        if name == "batch":
            continue
        registry.handler(name, retry=QUICK_RETRY, timeout=timedelta(minutes=5))(
            simulated(name, seconds, failure_rate, rng)
        )
    if "batch" in jobs:

        @registry.handler("batch", retry=QUICK_RETRY, timeout=timedelta(minutes=5))
        async def batch(ctx: JobContext, data: dict[str, Any]) -> None:
            ids = [str(i) for i in data.get("evaluationIds", [])]
            if fan_out is not None:
                await fan_out(ids)
            else:
                for _ in ids:
                    await asyncio.sleep(0.05)
                    await ctx.heartbeat()

    return registry


registry = build_registry({**PGQUEUE_JOBS, **TEMPORAL_JOBS})
