"""`jobsight worker`: runs the handlers of your own registry on one engine, built by the runner
factory, with the engine's own defaults unless a flag says otherwise."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg

from jobsight import dburl
from jobsight.cli.common import add_database_url, database_url
from jobsight.runners import JobRunner, defaults
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.temporal_access import ENV_NAMES
from jobsight.settings import SettingError

ENGINES = ("pgqueue", "temporal")
TEMPORAL_ENV = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_JOB_TASK_QUEUE",
                *ENV_NAMES.values())  # fmt: skip


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}"


def register(sub: Any) -> None:
    worker = sub.add_parser(
        "worker",
        help="work jobs with the handlers of your own module",
        description="Runs the handlers registered in a HandlerRegistry of your own module. "
        "SIGTERM stops fetching, lets running jobs finish within the grace period and hands "
        "back the rest. Flags not given keep the engine's own defaults.",
        epilog="A secured Temporal is reached with the environment: TEMPORAL_TLS, "
        "TEMPORAL_TLS_CA, TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY (mutual TLS), "
        "TEMPORAL_TLS_SERVER_NAME and TEMPORAL_API_KEY, as the sidecar is.",
    )
    worker.add_argument(
        "--runner", choices=ENGINES, default="pgqueue", help="engine (default pgqueue)"
    )
    worker.add_argument(
        "--task-queue",
        help="temporal: task queue (default $TEMPORAL_JOB_TASK_QUEUE, else "
        f"{defaults.TEMPORAL_TASK_QUEUE})",
    )
    worker.add_argument(
        "--temporal-address",
        help=f"temporal: host:port (default $TEMPORAL_ADDRESS, else {defaults.TEMPORAL_ADDRESS})",
    )
    worker.add_argument(
        "--handlers",
        required=True,
        metavar="MODULE:REGISTRY",
        help="import path of a HandlerRegistry, e.g. myapp.jobs:registry",
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        help=f"pgqueue: jobs of one name at once (default {defaults.CONCURRENCY}); temporal: "
        f"activities at once (default {defaults.MAX_CONCURRENT_ACTIVITIES})",
    )
    worker.add_argument(
        "--batch-size",
        type=int,
        help=f"pgqueue: most jobs per fetch (default {defaults.BATCH_SIZE})",
    )
    worker.add_argument(
        "--shutdown-grace",
        type=float,
        metavar="SECONDS",
        help="on SIGTERM, how long running jobs may finish (default "
        f"{_seconds(defaults.SHUTDOWN_GRACE)})",
    )
    worker.add_argument(
        "--heartbeat-interval",
        type=float,
        metavar="SECONDS",
        help=f"pgqueue: how often a worker and its jobs heartbeat (default "
        f"{_seconds(defaults.HEARTBEAT_INTERVAL)})",
    )
    worker.add_argument(
        "--heartbeat-timeout",
        type=float,
        metavar="SECONDS",
        help="a worker or job silent this long counts as crashed / lost (default "
        f"{_seconds(defaults.HEARTBEAT_TIMEOUT)})",
    )
    add_database_url(worker)
    worker.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """A pgqueue worker runs on uvloop where it is installed (not on Windows): its per-job
    work is mostly event-loop work (a task per job, socket reads), which uvloop does in C (worker
    CPU per job 13 -> 10 us in the drain benchmark). A Temporal worker keeps asyncio's own loop,
    the one Temporal's SDK and its workflow sandbox are built and tested on."""
    if args.runner == "pgqueue":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return int(uvloop.run(work(args)))
    return asyncio.run(work(args))


async def work(args: argparse.Namespace) -> int:
    """Runs the handlers of a registry on the chosen engine until SIGTERM / Ctrl-C."""
    from jobsight.runners.errors import JobsightError, ValidationError
    from jobsight.runners.registry import load_registry

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    url = database_url(args)
    try:
        registry = load_registry(args.handlers)
        runner = build_worker_runner(args, url, registry)
    except (ValueError, ValidationError) as exc:
        raise SettingError(str(exc)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.start()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise SettingError(
            f"DATABASE_URL: cannot start the worker: {dburl.scrub(str(exc), url)}"
        ) from None
    except JobsightError as exc:  # e.g. Temporal unreachable
        raise SettingError(str(exc)) from None
    settle_garbage_collector()
    print(f"worker running {', '.join(registry.names())}; SIGTERM or Ctrl-C stops it", flush=True)
    await stop.wait()
    print("stopping: finishing running jobs...", flush=True)
    await runner.stop()
    return 0


# The worker process's own collector settings (a library embedded in an application leaves them
# alone): what was loaded at start is frozen out of every later collection, and the youngest
# generation is collected after GC_YOUNG_THRESHOLD new container objects instead of 700, since a
# job's short-lived dicts and tasks would otherwise set off a collection every few jobs.
GC_YOUNG_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def build_worker_runner(args: argparse.Namespace, url: str, registry: HandlerRegistry) -> JobRunner:
    """The engine `--runner` names, built by the runner factory: the environment's Temporal
    settings, then the engine's defaults with the flags given on top."""
    from jobsight.runners.factory import RunnerSettings, build_runner, engine_settings

    env = {name: os.environ[name] for name in TEMPORAL_ENV if name in os.environ}
    if args.temporal_address:
        env["TEMPORAL_ADDRESS"] = args.temporal_address
    if args.task_queue:
        env["TEMPORAL_JOB_TASK_QUEUE"] = args.task_queue
    settings = RunnerSettings.from_env({**env, "DATABASE_URL": url, "JOB_RUNNER_TYPE": args.runner})
    tuned = replace(engine_settings(args.runner, settings), **flag_overrides(args))
    return build_runner(
        args.runner, replace(settings, engine_options={args.runner: tuned}), registry
    )


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The engine settings the command line sets (the flags given, by the engine's names)."""
    given: dict[str, Any] = {
        "shutdown_grace": _duration(args.shutdown_grace),
        "heartbeat_timeout": _duration(args.heartbeat_timeout),
    }
    if args.runner == "temporal":
        given["max_concurrent_activities"] = args.concurrency
        for flag in ("batch_size", "heartbeat_interval"):
            if getattr(args, flag) is not None:
                raise SettingError(f"--{flag.replace('_', '-')}: applies to --runner pgqueue only")
    else:
        given["concurrency"] = args.concurrency
        given["batch_size"] = args.batch_size
        given["heartbeat_interval"] = _duration(args.heartbeat_interval)
        timeout = given["heartbeat_timeout"]
        if timeout is not None and timeout < defaults.HEARTBEAT_TIMEOUT:
            # maintenance keeps its default pace relative to the timeout (crashes found as soon)
            given["maintenance_interval"] = defaults.MAINTENANCE_INTERVAL * (
                timeout / defaults.HEARTBEAT_TIMEOUT
            )
    return {name: value for name, value in given.items() if value is not None}


def _duration(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)
