"""PgQueuer (asyncpg driver) as a benchmark peer."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import uvloop
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries

from bench.peers import common


async def main() -> None:
    command, url, rest = common.args()
    conn = await asyncpg.connect(url)
    driver = AsyncpgDriver(conn)
    queries = Queries(driver)
    if command == "setup":
        await queries.install()
    elif command == "worker":
        batch = int(rest[0]) if rest else 10
        pgq = PgQueuer(driver)

        @pgq.entrypoint("noop")
        async def noop(job: Job) -> None:
            return None

        run = asyncio.create_task(pgq.run(batch_size=batch))
        common.ready()
        await common.until_sigterm()
        pgq.shutdown.set()
        await asyncio.wait_for(run, 30)
    else:

        async def send_batch(n: int) -> None:
            await queries.enqueue(["noop"] * n, [None] * n, [0] * n)

        async def send_one() -> None:
            await queries.enqueue("noop", None)

        await common.run_client(command, rest, send_batch, send_one)
    await conn.close()


if __name__ == "__main__":
    # The worker on uvloop, as PgQueuer's own CLI runs it (pgqueuer.adapters.cli.cli.asyncio_run)
    # whenever uvloop is installed, and as `jobsight worker` runs; producers on asyncio, as
    # jobsight's peer's.
    (uvloop.run if sys.argv[1:2] == ["worker"] else asyncio.run)(main())
