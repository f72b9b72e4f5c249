"""`jobsight serve`: wires settings, sources, leadership, poller, collector and server, and runs
them until SIGTERM / Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from jobsight import dburl
from jobsight.console import routes as console_routes
from jobsight.console.actions import Operator, Tokens
from jobsight.console.actions import check_settings as check_actions
from jobsight.settings import SettingError, SidecarSettings
from jobsight.sidecar import collector as collector_mod
from jobsight.sidecar.guard import (
    ConnectionGuard,
    QuietLoopErrors,
    connection_limit,
    protocol_factory,
    report_every,
)
from jobsight.sidecar.leadership import Identity, Leadership
from jobsight.sidecar.poller import Poller
from jobsight.sidecar.reloading import Reloader
from jobsight.sidecar.server import build_app
from jobsight.sidecar.webconfig import load_web_config
from jobsight.sources import enabled, load_source
from jobsight.sources.base import Source

log = logging.getLogger("jobsight.sidecar")
CONNECT_TIMEOUT_S = 5.0
KEEPALIVE_S = 15.0  # an idle keep-alive connection is closed after this long


def server_settings(settings: SidecarSettings) -> dict[str, str]:
    return {
        "application_name": "jobsight-sidecar",
        "statement_timeout": str(int(settings.statement_timeout * 1000)),
        "idle_in_transaction_session_timeout": str(int(settings.poll_timeout * 1000)),
        # Monitoring queries are short; JIT compiling one costs more than it runs (measured:
        # pg-boss's count through its indexes, 53 ms without JIT, 357 ms with it).
        "jit": "off",
        # A leader whose host vanishes loses its session (and the lock) within ~20 s.
        "tcp_keepalives_idle": "10",
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "2",
    }


def build_sources(settings: SidecarSettings) -> dict[str, Source[Any]]:
    return {name: load_source(name) for name in enabled(settings)}


async def check_state_tables(settings: SidecarSettings) -> None:
    """Refuses to start on a reachable database without the sidecar's tables; a database that
    cannot be reached is reported and waited for, not fatal."""
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        log.warning(
            "database %s unreachable at start (%s); serving and retrying",
            dburl.redact(settings.database_url),
            dburl.scrub(str(exc), settings.database_url),
        )
        return
    try:
        present = await conn.fetchval(
            "SELECT to_regclass('jobsight_sidecar.source_state') IS NOT NULL"
        )
    finally:
        await conn.close()
    if not present:
        raise SettingError(
            "DATABASE_URL: the sidecar's tables are missing; run "
            "`jobsight migrate up` against this database first"
        )


async def serve(
    settings: SidecarSettings,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    reload_from: tuple[Callable[[], SidecarSettings], str] | None = None,
) -> None:
    """Runs the sidecar until `stop` (or SIGINT / SIGTERM). With `reload_from` (the settings'
    loader and the configuration file's path), SIGHUP and a change of that file reload them."""
    from jobsight import __version__

    web_config = load_web_config(settings.web_config_file) if settings.web_config_file else None
    users = web_config.users if web_config else {}
    check_actions(settings, users)
    stop = stop or asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    await check_state_tables(settings)
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=0,
        max_size=4,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=settings.poll_timeout,
        server_settings=server_settings(settings),
    )
    sources = build_sources(settings)
    leadership = Leadership(
        settings.database_url,
        settings.instance,
        Identity(version=__version__),
        CONNECT_TIMEOUT_S,
        server_settings(settings),
    )
    poller = Poller(settings, sources, leadership, pool)
    watching: asyncio.Task[None] | None = None
    if reload_from is not None:
        reloader = Reloader(poller, *reload_from)
        if handle_signals:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, reloader.reload, "SIGHUP")
        watching = asyncio.create_task(reloader.watch(stop), name="config-watch")
    collector = collector_mod.SidecarCollector(poller.state, sources, __version__)
    console_pool = await console_routes.open_pool(settings) if settings.console else None
    actions = None
    if console_pool is not None and settings.console_actions_database_url:
        actions = console_routes.ActionsSetup(
            Operator.from_settings(settings), Tokens(settings, users), pool,
            settings.console_operators,
        )  # fmt: skip
    app = build_app(
        poller.state,
        collector_mod.registry_for(collector),
        settings,
        web_config,
        console_pool,
        actions,
    )
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_S)
    await runner.setup()
    listening: asyncio.Server | None = None
    reports: asyncio.Task[None] | None = None
    try:
        listening, guard = await listen(runner, settings, web_config.tls if web_config else None)
        reports = asyncio.create_task(report_every(guard), name="http-guard-reports")
        print(
            f"jobsight sidecar serving {'https' if web_config and web_config.tls else 'http'}"
            f"://{settings.host}:{settings.port}/metrics "
            f"(group {settings.instance!r}, sources {', '.join(sources)})",
            flush=True,
        )
        await poller.run(stop)
    finally:
        if reports is not None:
            reports.cancel()
        if watching is not None:
            watching.cancel()
        if listening is not None:
            listening.close()
        await runner.cleanup()
        await pool.close()
        if console_pool is not None:
            await console_pool.close()
        if actions is not None and actions.operator is not None:
            await actions.operator.close()


async def listen(
    runner: web.AppRunner, settings: SidecarSettings, tls: ssl.SSLContext | None
) -> tuple[asyncio.Server, ConnectionGuard]:
    """Listens on JOBSIGHT_HOST:JOBSIGHT_PORT, every connection behind the guard (sidecar/guard.py);
    event-loop errors (accept() under a file limit) are logged once per interval."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(QuietLoopErrors())
    guard = ConnectionGuard(connection_limit(settings.max_connections), settings.request_timeout)
    assert runner.server is not None
    try:
        server = await loop.create_server(
            protocol_factory(runner.server, guard),
            settings.host,
            settings.port,
            reuse_address=True,
            ssl=tls,
            ssl_handshake_timeout=settings.request_timeout if tls else None,
        )
    except OSError as exc:
        raise SettingError(
            f"JOBSIGHT_PORT: cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    return server, guard
