"""`jobsight console-indexes`: the console search's opt-in indexes, as SQL that runs verbatim on a
migrated database (each statement outside a transaction), and drops as cleanly."""

from __future__ import annotations

import asyncpg

from jobsight.console.indexes import INDEXES
from tests.support.processes import jobsight

EXISTING = "SELECT count(*) FROM pg_indexes WHERE tablename = 'jobs' AND indexname = ANY($1)"


async def test_the_printed_indexes_build_and_drop(migrated_db: str) -> None:
    created = jobsight("console-indexes")
    dropped = jobsight("console-indexes", "--drop")
    assert created.returncode == dropped.returncode == 0
    conn = await asyncpg.connect(migrated_db)
    try:
        assert await conn.fetchval(EXISTING, list(INDEXES)) == 0  # not part of migrate up
        for line in created.stdout.splitlines():
            await conn.execute(line)
        assert await conn.fetchval(EXISTING, list(INDEXES)) == len(INDEXES)
        for line in created.stdout.splitlines():  # again: nothing to do
            await conn.execute(line)
        for line in dropped.stdout.splitlines():
            await conn.execute(line)
        assert await conn.fetchval(EXISTING, list(INDEXES)) == 0
    finally:
        await conn.close()
