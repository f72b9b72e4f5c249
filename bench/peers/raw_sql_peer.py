"""The raw-SQL ceiling: the same row changes as jobsight (queue row and `jobs` row written,
fetched, completed: the queue row deleted, the `jobs` row updated; one `job_details` row) as bare
batched statements, one round trip per phase, with no library and no per-job work around them:
the practical limit of this machine for it. The statements have jobsight's shapes (rows found by
index lookups on `= ANY(...)`), so the ceiling is not lowered by plans jobsight avoids.

`worker URL LOOPS BATCH no-details` leaves the `job_details` row out: what that row (with its
foreign-key check) costs, measured rather than guessed."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from bench.peers import common
from jobsight.runners import migrator

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000ba5e0")
# Time-ordered ids, as jobsight's (UUIDv7: Unix milliseconds, then random bits).
UUID7 = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing
             substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
             FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"""


INSERT = """
WITH q AS (INSERT INTO pgqueue.job (id, name, tenant)
           SELECT UUID7, 'noop', $2 FROM generate_series(1, $1) RETURNING id)
INSERT INTO jobs (tenant, job_id, type, metadata, status, user_id, external_id)
SELECT $2, id, 'noop', '{}', 'queued', $2, id::text FROM q""".replace("UUID7", UUID7)


async def insert(conn: asyncpg.Connection, n: int) -> None:
    await conn.execute(INSERT, n, TENANT)


FETCH = """
WITH next AS (SELECT id FROM pgqueue.job WHERE name = 'noop' AND state < 'active'
              AND start_after <= now() ORDER BY priority DESC, created_at, id LIMIT $1
              FOR UPDATE SKIP LOCKED),
     taken AS (UPDATE pgqueue.job j SET state = 'active', started_at = now(),
               attempts = j.attempts + 1 WHERE j.id = ANY(ARRAY(SELECT id FROM next))
               RETURNING j.id, j.tenant),
     mirrored AS (UPDATE jobs SET status = 'processing', started_at = now(), attempts = 1
                  FROM taken WHERE jobs.job_id = ANY(ARRAY(SELECT id FROM taken))
                  AND jobs.tenant = taken.tenant AND jobs.job_id = taken.id)
SELECT id FROM taken"""

COMPLETE = """
WITH done AS (DELETE FROM pgqueue.job WHERE id = ANY($1) RETURNING id, tenant),
     mirrored AS (UPDATE jobs SET status = 'completed', finished_at = now()
                  FROM done WHERE jobs.job_id = ANY($1)
                  AND jobs.tenant = done.tenant AND jobs.job_id = done.id)
INSERT INTO job_details (tenant, job_id, step_name, status, attempt)
SELECT tenant, id, 'attempt', 'completed', 1 FROM done"""
COMPLETE_NO_DETAILS = COMPLETE[: COMPLETE.index("INSERT INTO job_details")] + "SELECT 1"


async def work(conn: asyncpg.Connection, stop: asyncio.Event, batch: int, complete: str) -> None:
    while not stop.is_set():
        ids = [r["id"] for r in await conn.fetch(FETCH, batch)]
        if not ids:
            await asyncio.sleep(0.01)
            continue
        await conn.execute(complete, ids)


async def main() -> None:
    command, url, rest = common.args()
    conn = await asyncpg.connect(url)
    if command == "setup":
        await migrator.migrate(conn, "up")
    elif command == "worker":
        stop = asyncio.Event()
        loops_n = int(rest[0]) if rest else 1
        batch = int(rest[1]) if len(rest) > 1 else 500
        complete = COMPLETE_NO_DETAILS if rest[2:3] == ["no-details"] else COMPLETE
        # As jobsight's: unnamed statements, planned for each call's arrays, and no sorts (FETCH
        # reads the fetch index in order even before the queue table has statistics).
        conns = [
            await asyncpg.connect(
                url, statement_cache_size=0, server_settings={"enable_sort": "off"}
            )
            for _ in range(loops_n)
        ]
        loops = [asyncio.create_task(work(c, stop, batch, complete)) for c in conns]
        common.ready()
        await common.until_sigterm()
        stop.set()
        await asyncio.gather(*loops)
    else:

        async def send_batch(n: int) -> None:
            await insert(conn, n)

        async def send_one() -> None:
            await insert(conn, 1)

        await common.run_client(command, rest, send_batch, send_one)
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
