"""The fixtures every test can use (registered by tests/conftest.py): the project's wheel, one
real PostgreSQL for the run, the Temporal dev server (started only when a test asks for its
address), and fresh or shared databases, connections and pools."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from jobsight.devstack.localstack import LocalStack, LocalTemporal
from jobsight.runners import migrator
from tests.support.paths import ROOT


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once per run the way the sidecar image builds it."""
    out = tmp_path_factory.mktemp("wheel")
    # setuptools copies into build/lib and never removes what a checkout no longer has (a
    # renamed migration would ship twice): build from a clean slate.
    for stale in [ROOT / "build" / "lib", *(ROOT / "build").glob("bdist.*")]:
        shutil.rmtree(stale, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("jobsight-*.whl")
    return wheel


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """PostgreSQL for the run ($DATABASE_URL when set)."""
    with LocalStack(temporal=False) as running:
        yield running


@pytest.fixture(scope="session")
def temporal_addresses() -> Iterator[tuple[str, str]]:
    """The Temporal dev server's gRPC and HTTP API addresses ($TEMPORAL_ADDRESS and
    $JOBSIGHT_TEMPORAL_HTTP_ADDRESS when set), started the first time a test asks for it, so a
    run of tests that need none never starts it."""
    given = os.environ.get("TEMPORAL_ADDRESS", "")
    if given:
        yield given, os.environ.get("JOBSIGHT_TEMPORAL_HTTP_ADDRESS", "")
        return
    server = LocalTemporal()
    try:
        yield server.start(), server.http_address
    finally:
        server.stop()


@pytest.fixture(scope="session")
def temporal_address(temporal_addresses: tuple[str, str]) -> str:
    return temporal_addresses[0]


@pytest.fixture(scope="session")
def temporal_http_address(temporal_addresses: tuple[str, str]) -> str:
    if not temporal_addresses[1]:
        pytest.fail("TEMPORAL_ADDRESS is set: set JOBSIGHT_TEMPORAL_HTTP_ADDRESS with it")
    return temporal_addresses[1]


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


@pytest.fixture
async def conn(migrated_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a fresh migrated database (the test's own `migrated_db`)."""
    connection = await asyncpg.connect(migrated_db)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the test's own migrated database."""
    async with asyncpg.create_pool(migrated_db, min_size=1, max_size=4) as created:
        yield created
