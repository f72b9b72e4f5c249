"""Slow and too many clients against a real `jobsight serve` on loopback: a request that
trickles in is cut after JOBSIGHT_REQUEST_TIMEOUT, /livez answers while slow clients hold every
connection the sidecar allows, and a low file limit neither silences /livez nor floods the log
(issue 17). Every load here is bounded in count and time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.sidecar import SidecarProcess
from tests.support.waiting import eventually

PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # never finished


async def open_slow(port: int, n: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    clients = []
    for _ in range(n):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            continue  # refused or reset at once: also a way of not being held
        writer.write(PARTIAL)
        clients.append((reader, writer))
    return clients


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except (ConnectionError, OSError):
        return True
    except TimeoutError:
        return False


async def livez(sidecar: SidecarProcess) -> bool:
    try:
        status, _ = await sidecar.get("/livez")
    except (aiohttp.ClientError, OSError, TimeoutError):  # any failure to answer is a "no"
        return False
    return status == 200


@pytest.fixture
def sidecar(migrated_db: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    made = SidecarProcess(
        migrated_db, tmp_path, JOBSIGHT_REQUEST_TIMEOUT="1s", JOBSIGHT_MAX_CONNECTIONS="10",
        JOBSIGHT_LOG_LEVEL="info",
    )  # fmt: skip
    yield made
    made.stop()


async def test_a_request_that_trickles_in_is_cut(sidecar: SidecarProcess) -> None:
    sidecar.start()
    await eventually(lambda: livez(sidecar), 30, "a sidecar answering /livez")
    slow = await open_slow(sidecar.port, 5)
    assert len(slow) == 5
    started = time.monotonic()
    for _, writer in slow:
        writer.write(b"x")  # still trickling
    results = await asyncio.gather(*(closed_by_server(r, 5) for r, _ in slow))
    assert all(results) and time.monotonic() - started < 4, results
    for _, writer in slow:
        writer.close()


async def test_livez_answers_while_slow_clients_fill_every_connection(
    sidecar: SidecarProcess,
) -> None:
    sidecar.start()
    await eventually(lambda: livez(sidecar), 30, "a sidecar answering /livez")
    slow = await open_slow(sidecar.port, 30)  # three times the limit of 10
    try:
        answered = [await livez(sidecar) for _ in range(5)]
        assert all(answered), answered
    finally:
        for _, writer in slow:
            writer.close()


async def test_a_low_file_limit_keeps_livez_up_and_the_log_short(
    migrated_db: str, tmp_path: Path
) -> None:
    sidecar = SidecarProcess(
        migrated_db, tmp_path, JOBSIGHT_REQUEST_TIMEOUT="2s", JOBSIGHT_LOG_LEVEL="info"
    )
    sidecar.start(file_limit=128)  # the connection limit drops to fit (256 -> 64)
    try:
        await eventually(lambda: livez(sidecar), 30, "a sidecar answering /livez")
        slow = await open_slow(sidecar.port, 300)
        try:
            answered = [await livez(sidecar) for _ in range(5)]
            assert all(answered), (answered, sidecar.log())
        finally:
            for _, writer in slow:
                writer.close()
        await asyncio.sleep(1)
        assert await livez(sidecar)
    finally:
        sidecar.stop()
    log = sidecar.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert len(log.splitlines()) < 40, log[-3000:]
