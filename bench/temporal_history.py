"""Does the temporal source's poll grow with the namespace's history? (issue 21, target 2)

On one Temporal dev server, the live work stays the same throughout (running workflows in the
source's scope, and a few closed within JOBSIGHT_RECENT_WINDOW), while the history (workflows of
the same task queue closed before the window) grows to each size. At each size, interleaved:
  poll  one fetch of the temporal source (what the sidecar runs every interval), as the poller
        runs it: the previous snapshot passed on, so the schedules and the closed count, each
        read once a minute, are not in it
  closed the source's once-a-minute count of workflows closed within the window
  all   the count the source made before issue 21, `GROUP BY ExecutionStatus` over every workflow
        in scope: the peer, on the same server in the same run
History workflows are started with a 1 s run timeout and no worker, so the server closes them
itself (timed out); the bench then waits until they are older than the recent window.

Run by bench/poll_cost.py (`--part temporal`), which records the result in
bench/results/poll_cost.json under "temporal_history".
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from jobsight.devstack.temporal import LocalTemporal
from jobsight.settings import SidecarSettings
from jobsight.sources import temporal
from jobsight.sources.base import PollContext

TASK_QUEUE = "bench-history"
RECENT_WINDOW_S = 60.0
LIVE_RUNNING = 20
LIVE_RECENT = 10
START_CONCURRENCY = 64


async def start_closing(client: Any, count: int, run_timeout: float = 1.0) -> None:
    """`count` workflows on the task queue that time out after `run_timeout` (no worker)."""
    sem = asyncio.Semaphore(START_CONCURRENCY)

    async def one() -> None:
        async with sem:
            await client.start_workflow(
                "bench-noop",
                id=f"bench-{uuid.uuid4()}",
                task_queue=TASK_QUEUE,
                run_timeout=timedelta(seconds=run_timeout),
            )

    await asyncio.gather(*(one() for _ in range(count)))


async def closed_count(client: Any) -> int:
    query = f'TaskQueue = "{TASK_QUEUE}" AND ExecutionStatus != "Running"'
    return int((await client.count_workflows(query)).count)


async def wait_closed(client: Any, want: int, within: float = 600.0) -> None:
    deadline = time.monotonic() + within
    while (have := await closed_count(client)) < want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{have} of {want} history workflows closed")
        await asyncio.sleep(1.0)


def closed_query() -> str:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - RECENT_WINDOW_S))
    return temporal.closed_query(temporal.scope_query([TASK_QUEUE]), since)


async def time_once(coro: Any) -> float:
    began = time.perf_counter()
    await coro
    return (time.perf_counter() - began) * 1000


async def measure(sizes: list[int], polls: int) -> dict[str, Any]:
    from temporalio.client import Client

    server = LocalTemporal()
    address = server.start()
    try:
        client = await Client.connect(address)
        settings = SidecarSettings(
            database_url="postgresql://unused",
            temporal_address=address,
            temporal_task_queues=(TASK_QUEUE,),
            recent_window=RECENT_WINDOW_S,
        )
        ctx: PollContext[temporal.TemporalSnapshot] = PollContext(settings, None)
        all_history = f'TaskQueue = "{TASK_QUEUE}" GROUP BY ExecutionStatus'
        rows: list[dict[str, Any]] = []
        closed = 0  # closed workflows started so far: all older than the window at each size
        for size in sizes:
            began = time.monotonic()
            await start_closing(client, size - closed)
            closed = size
            await wait_closed(client, closed)
            await asyncio.sleep(RECENT_WINDOW_S + 2)  # the history is now older than the window
            # The same live work at every size: running (no worker) and recently closed.
            await start_closing(client, LIVE_RECENT)
            closed += LIVE_RECENT
            await wait_closed(client, closed)
            if not rows:
                await start_closing(client, LIVE_RUNNING, run_timeout=24 * 3600.0)
            print(
                f"temporal history {size:,}: built in {time.monotonic() - began:.0f} s", flush=True
            )
            poll_ms, all_ms, closed_ms = [], [], []
            # As the poller does: the client kept, the previous snapshot passed on (so the
            # schedules, read once a minute, are read by this first poll and not by those timed).
            snap = await temporal.SOURCE.poll(ctx)
            for _ in range(polls):
                ctx = PollContext(settings, None, snap, ctx.clients)
                poll_ms.append(await time_once(temporal.SOURCE.poll(ctx)))
                all_ms.append(await time_once(client.count_workflows(all_history)))
                closed_ms.append(await time_once(client.count_workflows(closed_query())))
            snap = await temporal.SOURCE.poll(PollContext(settings, None, snap, ctx.clients))
            rows.append(
                {
                    "history_closed": size,
                    "poll_ms": round(statistics.median(poll_ms), 3),
                    "count_all_history_ms": round(statistics.median(all_ms), 3),
                    # the source's once-a-minute count of the recently closed (close-time bound)
                    "closed_read_ms": round(statistics.median(closed_ms), 3),
                    "running_seen": snap.workflows.get("running"),
                    "recent_closed_seen": sum(
                        n for s, n in snap.workflows.items() if s != "running"
                    ),
                }
            )
            print(rows[-1], flush=True)
        first, last = rows[0], rows[-1]
        return {
            "server": "temporal server start-dev (SQLite in memory), temporalio client",
            "task_queue_scope": TASK_QUEUE,
            "recent_window_s": RECENT_WINDOW_S,
            "live_running": LIVE_RUNNING,
            "live_recent_closed": LIVE_RECENT,
            "polls_per_size": polls,
            "sizes": rows,
            "poll_growth_last_over_first": round(last["poll_ms"] / first["poll_ms"], 2),
            "count_all_growth_last_over_first": round(
                last["count_all_history_ms"] / first["count_all_history_ms"], 2
            ),
            "closed_read_growth_last_over_first": round(
                last["closed_read_ms"] / first["closed_read_ms"], 2
            ),
            "target poll_growth <= 1.5": last["poll_ms"] / first["poll_ms"] <= 1.5,
        }
    finally:
        server.stop()
