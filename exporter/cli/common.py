"""What every `jobsight` command shares: the database URL, connecting, the exit code of a bad
setting."""

from __future__ import annotations

import argparse
import os

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
        raise SettingError(f"DATABASE_URL: cannot connect to {dburl.redact(url)}: {exc}") from None


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL)")
