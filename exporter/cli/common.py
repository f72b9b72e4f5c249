"""What every `jobsight` command shares: the database URL, connecting, the exit code of a bad
setting."""

from __future__ import annotations

import argparse
import os
import socket

import asyncpg

from jobsight import dburl
from jobsight.settings import SettingError

EXIT_BAD_SETTING = 2
CONNECT_TIMEOUT_S = 10.0


def database_url(args: argparse.Namespace) -> str:
    url = args.database_url or os.environ.get("DATABASE_URL", "")
    if not url:
        raise SettingError("DATABASE_URL: not set (or pass --database-url)")
    try:
        return dburl.check(url)
    except ValueError as exc:
        raise SettingError(str(exc)) from None


async def connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        problem = dburl.scrub(str(exc), url)
        raise SettingError(
            f"DATABASE_URL: cannot connect to {dburl.redact(url)}: {problem}"
        ) from None


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL)")


def require_free_port(host: str, port: int) -> None:
    """Refuses at once when something already listens on host:port, before anything starts."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SettingError(
                f"JOBSIGHT_PORT: {host}:{port} is taken ({exc.strerror}); stop what listens "
                "there, or choose another port with JOBSIGHT_PORT"
            ) from None
