"""Session fixtures: one real local stack (PostgreSQL + Temporal dev server) for the run, and a
fresh database per test that needs one. Under CI=true a missing tool fails instead of skipping."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from exporter.localstack import LocalStack
from runners import migrator

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(available: bool, what: str) -> None:
    """Skips locally when a tool is missing; fails in CI, where every tool must be installed."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing in CI: .ci/run must install it")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with LocalStack(temporal=True) as running:
        yield running


@pytest.fixture(scope="session")
def temporal_address(stack: LocalStack) -> str:
    return stack.temporal_address


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
async def empty_db(stack: LocalStack) -> AsyncIterator[str]:
    """The URL of a new, empty database on the session's server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stack.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(stack.database_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def migrated_db(empty_db: str) -> str:
    conn = await asyncpg.connect(empty_db)
    try:
        await migrator.migrate(conn, "up")
    finally:
        await conn.close()
    return empty_db


@pytest.fixture
async def db(migrated_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated_db)
    try:
        yield conn
    finally:
        await conn.close()
