"""The bare temporalio baseline of bench/temporal_throughput.py: a workflow that runs one no-op
activity, and no database. `worker ADDRESS TASK_QUEUE` runs its worker until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

WORKFLOW = "bench.noop"


@activity.defn(name="bench.noop_activity")
async def noop_activity(data: dict[str, Any]) -> None:
    return None


@workflow.defn(name=WORKFLOW)
class NoopWorkflow:
    @workflow.run
    async def run(self, data: dict[str, Any]) -> None:
        await workflow.execute_activity(
            "bench.noop_activity", data, start_to_close_timeout=timedelta(seconds=30)
        )


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[NoopWorkflow],
        activities=[noop_activity],
        max_concurrent_activities=100,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    # The sandbox re-imports a workflow's module by name: run it from the imported module, not
    # from __main__.
    from bench.peers import temporal_bare

    asyncio.run(temporal_bare.serve(sys.argv[2], sys.argv[3]))
