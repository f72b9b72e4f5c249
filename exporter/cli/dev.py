"""`jobsight dev`: the demo behind `make run`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import TYPE_CHECKING, Any

from jobsight import dburl
from jobsight.cli.common import connect, require_free_port

if TYPE_CHECKING:
    from jobsight.devstack.localstack import LocalStack
    from jobsight.settings import SidecarSettings


def register(sub: Any) -> None:
    dev = sub.add_parser(
        "dev",
        help="run the demo (what `make run` starts)",
        description="Starts a throwaway PostgreSQL and (unless --no-temporal) a Temporal dev "
        "server on loopback ports, applies the migrations, runs workers with the sample handlers "
        "(runners/examples/demo_handlers.py) under a steady load, on pgqueue and (with Temporal) "
        "on Temporal, and the sidecar on 127.0.0.1:$JOBSIGHT_PORT (default 9465; a taken port "
        "stops it at once); prints where to look. DATABASE_URL / TEMPORAL_ADDRESS use existing "
        "services instead. Ctrl-C stops everything.",
    )
    dev.add_argument(
        "--no-temporal",
        action="store_true",
        help="no Temporal: PostgreSQL, the pgqueue workers and the sidecar only",
    )
    dev.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The demo: local Postgres and Temporal, migrations, workers on both engines with the sample
    handlers under a steady load, and the sidecar on 127.0.0.1; Ctrl-C stops everything."""
    import logging

    from jobsight.devstack.demo import demo_settings
    from jobsight.devstack.localstack import LocalStack
    from jobsight.settings import load_settings

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("temporalio", "temporalio.activity", "temporalio.workflow"):
        logging.getLogger(name).setLevel(logging.ERROR)  # failed demo jobs are expected
    placeholder = {**os.environ, "DATABASE_URL": "postgresql://localhost/demo"}
    wanted = demo_settings(load_settings(placeholder), "")
    require_free_port(wanted.host, wanted.port)  # not a stack started for someone else's server
    stack = LocalStack(temporal=not args.no_temporal, temporal_ui=True)
    print("starting the local stack (PostgreSQL, Temporal dev server)...", flush=True)
    with stack:
        env = {**os.environ, "DATABASE_URL": stack.database_url}
        if stack.temporal_address:
            env["TEMPORAL_ADDRESS"] = stack.temporal_address
        if stack.temporal_server:  # the sidecar reads it over the HTTP API, without the SDK
            env.setdefault("JOBSIGHT_TEMPORAL_HTTP_ADDRESS", stack.temporal_server.http_address)
        ui_url = stack.temporal_server.ui_url if stack.temporal_server else None
        settings = demo_settings(load_settings(env), ui_url or "")
        asyncio.run(run_demo(stack, settings))
    print("stopped; nothing left behind.")
    return 0


async def run_demo(stack: LocalStack, settings: SidecarSettings) -> None:
    from jobsight.devstack.demo import Demo
    from jobsight.runners import migrator

    conn = await connect(stack.database_url)
    try:
        await migrator.migrate(conn, "up")
    finally:
        await conn.close()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    demo = asyncio.create_task(Demo(settings, temporal=bool(stack.temporal_address)).run(stop))
    await asyncio.sleep(1.0)
    if demo.done():
        await demo  # a start-up error (e.g. the port is taken) surfaces here
    base = f"http://{settings.host}:{settings.port}"
    print()
    print(f"  status page    {base}/")
    print(f"  console        {base}/jobs  (queues, failures, schedules, jobs)")
    print(f"  metrics        {base}/metrics")
    if settings.temporal_ui_url:
        print(f"  temporal ui    {settings.temporal_ui_url}")
    print(f"  database       {dburl.redact(stack.database_url)}")
    if stack.temporal_address:
        print(f"  temporal       {stack.temporal_address}")
    print("  handlers       runners/examples/demo_handlers.py")
    print(
        "\nworkers on pgqueue and Temporal are running a steady load; press Ctrl-C to stop.",
        flush=True,
    )
    await demo
