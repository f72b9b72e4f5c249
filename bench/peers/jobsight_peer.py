"""jobsight pgqueue as a benchmark peer (its worker is the real `jobsight worker` command)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from bench.peers import common
from jobsight.runners import HandlerRegistry, migrator
from jobsight.runners.pgqueue import PgQueueJobRunner

registry = HandlerRegistry()
TENANT = uuid.UUID("00000000-0000-4000-8000-0000000be4c1")


@registry.handler("noop")
async def noop(ctx, data):  # type: ignore[no-untyped-def]
    return None


async def main() -> None:
    command, url, rest = common.args()
    if command == "setup":
        conn = await asyncpg.connect(url)
        await migrator.migrate(conn, "up")
        await conn.close()
        return
    runner = PgQueueJobRunner(url, registry, work=False)

    async def send_batch(n: int) -> None:
        await runner.schedule_many("noop", [{}] * n, tenant=TENANT)

    async def send_one() -> None:
        await runner.schedule_job("noop", {}, tenant=TENANT)

    await runner.pool()  # connected before timing starts, as the other peers are
    await common.run_client(command, rest, send_batch, send_one)
    await runner.stop()


if __name__ == "__main__":
    asyncio.run(main())
