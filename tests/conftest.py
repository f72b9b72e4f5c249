"""Session fixtures: one real local stack (PostgreSQL + Temporal dev server) for the run, and a
fresh database per test that needs one. Under CI=true a missing tool fails instead of skipping."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from jobsight.devstack.localstack import LocalStack
from jobsight.runners import migrator

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(available: bool, what: str) -> None:
    """Skips locally when a tool is missing; fails in CI, where every tool must be installed."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing in CI: .ci/run must install it")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once per run the way the sidecar image builds it."""
    out = tmp_path_factory.mktemp("wheel")
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(root)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("jobsight-*.whl")
    return wheel


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with LocalStack(temporal=True) as running:
        yield running


@pytest.fixture(scope="session")
def temporal_address(stack: LocalStack) -> str:
    return stack.temporal_address


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _create_database(server_url: str, name: str, template: str = "template1") -> str:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return with_database(server_url, name)


async def _drop_database(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def migrated_template(stack: LocalStack) -> str:
    """A database migrated once per session, cloned (cheaply) for each test that needs one."""
    name = f"tpl_{uuid.uuid4().hex[:12]}"

    async def build() -> None:
        url = await _create_database(stack.database_url, name)
        conn = await asyncpg.connect(url)
        try:
            await migrator.migrate(conn, "up")
        finally:
            await conn.close()

    asyncio.run(build())
    return name


@pytest.fixture(scope="session")
def shared_db(stack: LocalStack, migrated_template: str) -> str:
    """A migrated database shared by the session's tests that only read and write their own rows
    (fresh databases cost about 0.3 s each; use `migrated_db` when a test needs one to itself)."""
    name = f"shared_{uuid.uuid4().hex[:12]}"
    return asyncio.run(_create_database(stack.database_url, name, migrated_template))


@pytest.fixture
async def empty_db(stack: LocalStack) -> AsyncIterator[str]:
    """The URL of a new, empty database on the session's server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield await _create_database(stack.database_url, name)
    await _drop_database(stack.database_url, name)


@pytest.fixture
async def migrated_db(stack: LocalStack, migrated_template: str) -> AsyncIterator[str]:
    """The URL of a new database with every migration applied, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield await _create_database(stack.database_url, name, migrated_template)
    await _drop_database(stack.database_url, name)


@pytest.fixture
async def db(shared_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the shared migrated database."""
    conn = await asyncpg.connect(shared_db)
    try:
        yield conn
    finally:
        await conn.close()
