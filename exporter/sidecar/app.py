"""`jobsight serve`: wires settings, sources, leadership, poller, collector and server, and runs
them until SIGTERM / Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import asyncpg
from aiohttp import web

from jobsight import dburl
from jobsight.settings import SettingError, SidecarSettings
from jobsight.sidecar import collector as collector_mod
from jobsight.sidecar.leadership import Identity, Leadership
from jobsight.sidecar.poller import Poller
from jobsight.sidecar.server import build_app
from jobsight.sources import enabled, load_source
from jobsight.sources.base import Source

log = logging.getLogger("jobsight.sidecar")
CONNECT_TIMEOUT_S = 5.0


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
            exc,
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
    settings: SidecarSettings, stop: asyncio.Event | None = None, handle_signals: bool = True
) -> None:
    from jobsight import __version__

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
    collector = collector_mod.SidecarCollector(poller.state, sources, settings, __version__)
    app = build_app(poller.state, collector_mod.registry_for(collector), settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise SettingError(
                f"JOBSIGHT_PORT: cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from None
        print(
            f"jobsight sidecar serving http://{settings.host}:{settings.port}/metrics "
            f"(group {settings.instance!r}, sources {', '.join(sources)})",
            flush=True,
        )
        await poller.run(stop)
    finally:
        await runner.cleanup()
        await pool.close()
