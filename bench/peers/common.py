"""The command protocol every Python peer script speaks (the Node peer speaks the same):

setup URL                  create the peer's schema
enqueue URL N              queue N no-op jobs in batches; prints {"seconds", "cpu_seconds"}
                           (the producer's own CPU time)
latency URL N              N single sends one after another; prints {"p50_ms", "p99_ms"}
produce URL SECONDS        batches of 100 for SECONDS; prints {"enqueued": ...}
worker URL [BATCH]         prints "ready" once consuming, works until SIGTERM
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

BATCH = 1000
PRODUCE_BATCH = 100


def emit(payload: dict) -> None:
    print(json.dumps(payload), flush=True)


async def timed_enqueue(n: int, send_batch: Callable[[int], Awaitable[None]]) -> None:
    started, cpu = time.perf_counter(), time.process_time()
    for offset in range(0, n, BATCH):
        await send_batch(min(BATCH, n - offset))
    emit({"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu})


async def timed_latency(n: int, send_one: Callable[[], Awaitable[None]]) -> None:
    for _ in range(20):  # warm-up: connections, prepared statements
        await send_one()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await send_one()
        samples.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(samples, n=100)
    emit({"p50_ms": statistics.median(samples), "p99_ms": cuts[98]})


async def produce(seconds: float, send_batch: Callable[[int], Awaitable[None]]) -> None:
    deadline = time.perf_counter() + seconds
    sent = 0
    while time.perf_counter() < deadline:
        await send_batch(PRODUCE_BATCH)
        sent += PRODUCE_BATCH
    emit({"enqueued": sent})


async def run_client(
    command: str,
    rest: list[str],
    send_batch: Callable[[int], Awaitable[None]],
    send_one: Callable[[], Awaitable[None]],
) -> None:
    """The producer-side commands, the same for every peer."""
    if command == "enqueue":
        await timed_enqueue(int(rest[0]), send_batch)
    elif command == "latency":
        await timed_latency(int(rest[0]), send_one)
    elif command == "produce":
        await produce(float(rest[0]), send_batch)
    else:
        sys.exit(f"unknown command {command!r}\n{__doc__}")


async def until_sigterm() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def ready() -> None:
    print("ready", flush=True)


def args() -> tuple[str, str, list[str]]:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    return sys.argv[1], sys.argv[2], sys.argv[3:]
