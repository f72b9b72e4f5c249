"""The demo behind `make run` / `jobsight dev`: workers on both engines running the sample
handlers (runners/examples/demo_handlers.py), a steady load with a few percent of failures, and
the sidecar on 127.0.0.1, all in one process until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from jobsight.runners.examples.demo_handlers import PGQUEUE_JOBS, TEMPORAL_JOBS, build_registry
from jobsight.settings import SidecarSettings

if TYPE_CHECKING:
    from jobsight.runners.pgqueue import PgQueueJobRunner
    from jobsight.runners.temporal import TemporalJobRunner

log = logging.getLogger("jobsight.demo")
TENANT = uuid.UUID("00000000-0000-4000-8000-00000000de70")
JOBS_PER_SECOND = 6.0
POISON_RATE = 0.03  # jobs whose every attempt fails: they end failed after their retries
STOP_GRACE_S = 3.0


class Demo:
    def __init__(self, settings: SidecarSettings, temporal: bool, sidecar: bool = True) -> None:
        self.settings = settings
        self.with_temporal = temporal
        self.with_sidecar = sidecar  # False: the workers and the load only (bench/sidecar_memory)
        self.rng = random.Random(7)
        self.pgqueue: PgQueueJobRunner | None = None
        self.temporal: TemporalJobRunner | None = None

    async def run(self, stop: asyncio.Event) -> None:
        from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings
        from jobsight.sidecar.app import serve

        url = self.settings.database_url
        grace = timedelta(seconds=STOP_GRACE_S)
        self.pgqueue = PgQueueJobRunner(
            url, build_registry(PGQUEUE_JOBS), PgQueueSettings(shutdown_grace=grace)
        )
        await self.pgqueue.start()
        if self.with_temporal:
            from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings

            registry = build_registry(TEMPORAL_JOBS, fan_out=self._fan_out)
            self.temporal = TemporalJobRunner(
                url,
                registry,
                TemporalSettings(
                    address=self.settings.temporal_address,
                    task_queue=self.settings.temporal_task_queues[0],
                    shutdown_grace=grace,
                ),
            )
            await self.temporal.start()
        await self.pgqueue.schedule_recurring_job("expired-credits", {}, "1 minute", tenant=TENANT)
        sidecar = (
            asyncio.create_task(serve(self.settings, stop, handle_signals=False))
            if self.with_sidecar
            else None
        )
        load = asyncio.create_task(self._load(stop))
        try:
            await stop.wait()
            print("\nstopping (running jobs get a few seconds to finish)...", flush=True)
        finally:
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load
            if sidecar is not None:
                await sidecar
            for runner in (self.temporal, self.pgqueue):
                if runner is not None:
                    await runner.stop()

    async def _load(self, stop: asyncio.Event) -> None:
        names = [*PGQUEUE_JOBS, *(TEMPORAL_JOBS if self.temporal else ())]
        names.remove("expired-credits")  # recurring
        while not stop.is_set():
            name = self.rng.choice(names)
            data = (
                {
                    "batchId": uuid.uuid4().hex[:8],
                    "evaluationIds": [uuid.uuid4().hex[:8] for _ in range(self.rng.randint(2, 5))],
                }
                if name == "batch"
                else {"poison": self.rng.random() < POISON_RATE}
            )
            runner = self.temporal if name in TEMPORAL_JOBS else self.pgqueue
            if runner is None:
                continue
            try:
                await runner.schedule_job(name, data, tenant=TENANT)
            except Exception as exc:  # a down engine is logged; the demo goes on
                log.warning("could not schedule %s: %s", name, exc)
                await asyncio.sleep(1)
            await asyncio.sleep(self.rng.expovariate(JOBS_PER_SECOND))

    async def _fan_out(self, evaluation_ids: list[str]) -> None:
        assert self.temporal is not None
        for evaluation_id in evaluation_ids:
            await self.temporal.schedule_job(
                "evaluation", {"evaluationId": evaluation_id}, tenant=TENANT
            )


def demo_settings(base: SidecarSettings, temporal_ui_url: str) -> SidecarSettings:
    """The sidecar of the demo: loopback only, quick polls, every source on."""
    sources = ("jobs", "pgqueue", "pgboss", "postgres") + (
        ("temporal",) if "temporal" in base.sources else ()
    )
    return replace(
        base,
        host="127.0.0.1",
        poll_interval=5.0,
        sources=sources,
        temporal_ui_url=base.temporal_ui_url or temporal_ui_url,
        stuck_after=timedelta(minutes=10).total_seconds(),
    )
