"""The `jobsight` command line. Each subcommand has --help; bad settings exit 2 with one line."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

import asyncpg

from jobsight import __version__, dburl
from jobsight.settings import SettingError

EXIT_BAD_SETTING = 2
CONNECT_TIMEOUT_S = 10.0


def _database_url(args: argparse.Namespace) -> str:
    url = args.database_url or os.environ.get("DATABASE_URL", "")
    if not url:
        raise SettingError("DATABASE_URL: not set (or pass --database-url)")
    try:
        return dburl.check(url)
    except ValueError as exc:
        raise SettingError(str(exc)) from None


async def _connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise SettingError(f"DATABASE_URL: cannot connect to {dburl.redact(url)}: {exc}") from None


async def _migrate(args: argparse.Namespace) -> int:
    from jobsight.runners import migrator

    conn = await _connect(_database_url(args))
    try:
        if args.action == "status":
            for state in await migrator.status(conn):
                mark = "applied " if state.applied_at else "pending "
                when = state.applied_at.isoformat(timespec="seconds") if state.applied_at else ""
                drift = "  (file changed since applied)" if state.checksum_matches is False else ""
                print(f"{state.version:04d} {mark} {state.name:<24} {when}{drift}")
            return 0
        steps = await migrator.migrate(conn, args.action, args.to)
        if not steps:
            print(f"migrate {args.action}: nothing to do")
        for step in steps:
            print(f"migrate {args.action}: {step.version:04d}_{step.name}")
        return 0
    except migrator.MigrationError as exc:
        raise SettingError(str(exc)) from None
    finally:
        await conn.close()


def _dev(args: argparse.Namespace) -> int:
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
    stack = LocalStack(temporal=not args.no_temporal, temporal_ui=True)
    print("starting the local stack (PostgreSQL, Temporal dev server)...", flush=True)
    with stack:
        env = {**os.environ, "DATABASE_URL": stack.database_url}
        if stack.temporal_address:
            env["TEMPORAL_ADDRESS"] = stack.temporal_address
        ui_url = stack.temporal_server.ui_url if stack.temporal_server else None
        settings = demo_settings(load_settings(env), ui_url or "")
        asyncio.run(_run_demo(stack, settings))
    print("stopped; nothing left behind.")
    return 0


async def _run_demo(stack, settings) -> None:  # type: ignore[no-untyped-def]
    from jobsight.devstack.demo import Demo
    from jobsight.runners import migrator

    conn = await _connect(stack.database_url)
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


def _run_worker(args: argparse.Namespace) -> int:
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
            return uvloop.run(_worker(args))
    return asyncio.run(_worker(args))


async def _worker(args: argparse.Namespace) -> int:
    """Runs the handlers of a registry on the chosen engine until SIGTERM / Ctrl-C."""
    import logging

    from jobsight.runners.errors import JobsightError, ValidationError
    from jobsight.runners.registry import load_registry

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    url = _database_url(args)
    try:
        registry = load_registry(args.handlers)
        runner = _build_worker_runner(args, url, registry)
    except (ValueError, ValidationError) as exc:
        raise SettingError(str(exc)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.start()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise SettingError(f"DATABASE_URL: cannot start the worker: {exc}") from None
    except JobsightError as exc:  # e.g. Temporal unreachable
        raise SettingError(str(exc)) from None
    print(f"worker running {', '.join(registry.names())}; SIGTERM or Ctrl-C stops it", flush=True)
    await stop.wait()
    print("stopping: finishing running jobs...", flush=True)
    await runner.stop()
    return 0


def _build_worker_runner(args: argparse.Namespace, url: str, registry):  # type: ignore[no-untyped-def]
    """The engine `jobsight worker --runner` names, with the command line's settings."""
    from datetime import timedelta

    if args.runner == "temporal":
        from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings

        settings = TemporalSettings(
            address=args.temporal_address or os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
            task_queue=args.task_queue
            or os.environ.get("TEMPORAL_JOB_TASK_QUEUE", "jobsight-jobs"),
            max_concurrent_activities=args.concurrency,
            shutdown_grace=timedelta(seconds=args.shutdown_grace),
        )
        return TemporalJobRunner(url, registry, settings)
    from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings

    settings = PgQueueSettings(
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        shutdown_grace=timedelta(seconds=args.shutdown_grace),
        heartbeat_interval=timedelta(seconds=args.heartbeat_interval),
        heartbeat_timeout=timedelta(seconds=args.heartbeat_timeout),
    )
    return PgQueueJobRunner(url, registry, settings)


def _serve(args: argparse.Namespace) -> int:
    import logging

    from jobsight.settings import load_settings
    from jobsight.sidecar.app import serve

    settings = load_settings(os.environ, args.config)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(settings))
    return 0


def _verdict(args: argparse.Namespace) -> int:
    from jobsight.cli.verdict import run
    from jobsight.settings import load_settings

    return run(args.url, lambda: load_settings(os.environ, args.config), args.version, args.json)


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jobsight.generators.generate import generate

    changed = generate(Path(args.root), check=args.check)
    for path in changed:
        print(f"{'stale' if args.check else 'wrote'} {path}")
    if args.check and changed:
        print("generated files are stale: run `make generate` and commit them", file=sys.stderr)
        return 1
    if not changed:
        print("generated files are up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobsight",
        description="Observable, safe-to-roll-out background jobs on Postgres and Temporal.",
    )
    parser.add_argument("--version", action="version", version=f"jobsight {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = sub.add_parser(
        "migrate",
        help="apply, revert or list the schema migrations",
        description="Applies the jobs/job_details schema migrations under an advisory lock.",
    )
    migrate.add_argument("action", choices=["up", "down", "status"])
    migrate.add_argument(
        "--to",
        type=int,
        metavar="N",
        help="target version (up: default newest; down: default one step back; 0 = nothing)",
    )
    migrate.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL)")
    migrate.set_defaults(run=lambda a: asyncio.run(_migrate(a)))

    worker = sub.add_parser(
        "worker",
        help="work jobs with the handlers of your own module",
        description="Runs the handlers registered in a HandlerRegistry of your own module. "
        "SIGTERM stops fetching, lets running jobs finish within the grace period and hands "
        "back the rest.",
    )
    worker.add_argument(
        "--runner",
        choices=["pgqueue", "temporal"],
        default="pgqueue",
        help="engine (default pgqueue)",
    )
    worker.add_argument(
        "--task-queue",
        help="temporal: task queue (default $TEMPORAL_JOB_TASK_QUEUE, else jobsight-jobs)",
    )
    worker.add_argument(
        "--temporal-address",
        help="temporal: host:port (default $TEMPORAL_ADDRESS, else localhost:7233)",
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
        default=10,
        help="pgqueue: jobs per name at once; temporal: activities at once",
    )
    worker.add_argument("--batch-size", type=int, default=100, help="pgqueue: most jobs per fetch")
    worker.add_argument("--shutdown-grace", type=float, default=30.0, metavar="SECONDS")
    worker.add_argument("--heartbeat-interval", type=float, default=5.0, metavar="SECONDS")
    worker.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a worker or job silent this long counts as crashed / lost",
    )
    worker.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL)")
    worker.set_defaults(run=_run_worker)

    dev = sub.add_parser(
        "dev",
        help="run the demo (what `make run` starts)",
        description="Starts a throwaway PostgreSQL and Temporal dev server on loopback ports, "
        "applies the migrations, runs workers on both engines with the sample handlers "
        "(runners/examples/demo_handlers.py) under a steady load, and the sidecar on "
        "127.0.0.1:$JOBSIGHT_PORT (default 9465); prints where to look. DATABASE_URL / "
        "TEMPORAL_ADDRESS use existing services instead. Ctrl-C stops everything.",
    )
    dev.add_argument("--no-temporal", action="store_true", help="start PostgreSQL only")
    dev.set_defaults(run=_dev)

    serve = sub.add_parser(
        "serve",
        help="run the sidecar: metrics, traces and health of every job source",
        description="Polls the jobs tables, pgqueue, pg-boss, Temporal and PostgreSQL (one "
        "sidecar of a group at a time, by advisory lock), serves /metrics, /livez, /readyz and "
        "a status page, and exports finished jobs as OTLP traces. Settings come from the "
        "environment (JOBSIGHT_*, DATABASE_URL, TEMPORAL_*, OTEL_*) over an optional YAML file; "
        "the README lists every one.",
    )
    serve.add_argument(
        "--config", metavar="FILE", help="YAML settings file (default: $JOBSIGHT_CONFIG)"
    )
    serve.set_defaults(run=_serve)

    verdict = sub.add_parser(
        "verdict",
        help="print the rollback verdict and exit with its code (for CI/CD gates)",
        description="Asks a running sidecar (--url) or, without --url, polls the database and "
        "Temporal once with the sidecar's settings, and prints every trigger. Exit codes: "
        "0 ok, 1 degraded, 3 rollback, 4 unknown (or no answer), 2 bad setting.",
    )
    verdict.add_argument("--url", help="a sidecar's base URL, e.g. http://127.0.0.1:9465")
    verdict.add_argument("--version", help="judge one worker version (canary scope)")
    verdict.add_argument("--json", action="store_true", help="print the /verdict JSON")
    verdict.add_argument("--config", metavar="FILE", help="YAML settings (database mode)")
    verdict.set_defaults(run=_verdict)

    gen = sub.add_parser(
        "generate",
        help="write the generated files (metrics reference, dashboards, alert rules)",
        description="Regenerates every committed, generated file from the code.",
    )
    gen.add_argument("--root", default=".", help="repository root to write into (default: .)")
    gen.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file is stale"
    )
    gen.set_defaults(run=_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except SettingError as exc:
        print(f"jobsight: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTING


if __name__ == "__main__":
    sys.exit(main())
