"""Migrations against real PostgreSQL: empty database, seed-shaped database with rows, up/down/up,
status at each step, and concurrent runs. Parsing and planning are tested without I/O."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from jobsight.runners import migrator
from jobsight.runners.migrator import Migration, MigrationError, parse_migration, plan

ALL_VERSIONS = [m.version for m in migrator.load_migrations()]  # every migration shipped

SEED_DDL = """
CREATE TYPE job_status AS ENUM ('pending', 'processing', 'completed', 'failed', 'active', 'queued');
CREATE TABLE jobs (
  tenant UUID NOT NULL,
  job_id UUID DEFAULT gen_random_uuid() NOT NULL,
  type VARCHAR NOT NULL,
  metadata JSONB,
  status job_status NOT NULL,
  created_at TIMESTAMP DEFAULT NOW(),
  updated_at TIMESTAMP,
  user_id UUID NOT NULL,
  PRIMARY KEY (tenant, job_id)
);
CREATE TABLE job_details (
  tenant UUID NOT NULL,
  detail_id UUID DEFAULT gen_random_uuid() NOT NULL,
  job_id UUID NOT NULL,
  step_name VARCHAR NOT NULL,
  status job_status NOT NULL,
  result JSONB,
  processed_at TIMESTAMP,
  retry_count INTEGER DEFAULT 0,
  metadata JSONB,
  PRIMARY KEY (tenant, detail_id),
  FOREIGN KEY (tenant, job_id) REFERENCES jobs(tenant, job_id)
);
"""
NEW_JOB_COLUMNS = {
    "runner_type",
    "external_id",
    "external_run_id",
    "run_at",
    "started_at",
    "finished_at",
    "attempts",
    "worker_version",
    "progress",
    "error",
}


# --- pure -------------------------------------------------------------------------------------


def test_parse_splits_up_and_down() -> None:
    m = parse_migration("0007_thing.sql", "-- intro\n-- migrate:up\nA;\n-- migrate:down\nB;\n")
    assert (m.version, m.name, m.up, m.down) == (7, "thing", "A;", "B;")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("7_thing.sql", "-- migrate:up\nA;\n-- migrate:down\nB;", "name must look like"),
        ("0001_x.sql", "-- migrate:up\nA;", "missing or empty '-- migrate:down'"),
        ("0001_x.sql", "-- migrate:up\n\n-- migrate:down\nB;", "missing or empty '-- migrate:up'"),
        (
            "0001_x.sql",
            "-- migrate:up\nA;\n-- migrate:up\nC;\n-- migrate:down\nB;",
            "more than one",
        ),
    ],
)
def test_parse_rejects_malformed_files(name: str, text: str, message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        parse_migration(name, text)


def _m(v: int) -> Migration:
    return Migration(v, f"m{v}", "up", "down", "x")


@pytest.mark.parametrize(
    ("applied", "direction", "target", "expected"),
    [
        (set(), "up", None, [1, 2, 3]),
        ({1}, "up", None, [2, 3]),
        (set(), "up", 2, [1, 2]),
        ({1, 2, 3}, "up", None, []),
        ({1, 2, 3}, "down", None, [3]),
        ({1, 2, 3}, "down", 0, [3, 2, 1]),
        ({1, 2, 3}, "down", 1, [3, 2]),
        (set(), "down", None, []),
    ],
)
def test_plan(applied: set[int], direction: str, target: int | None, expected: list[int]) -> None:
    steps = plan([_m(1), _m(2), _m(3)], applied, direction, target)
    assert [s.version for s in steps] == expected


def test_plan_rejects_unknown_target() -> None:
    with pytest.raises(MigrationError, match="--to 9"):
        plan([_m(1)], set(), "up", 9)


def test_shipped_migrations_load_in_order() -> None:
    versions = [m.version for m in migrator.load_migrations()]
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 2


# --- real PostgreSQL --------------------------------------------------------------------------


async def _columns(conn: asyncpg.Connection, table: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
    )
    return {r["column_name"] for r in rows}


async def _applied_versions(conn: asyncpg.Connection) -> list[int]:
    return [s.version for s in await migrator.status(conn) if s.applied_at is not None]


async def _enum_labels(conn: asyncpg.Connection) -> list[str]:
    return await conn.fetchval(
        "SELECT array_agg(enumlabel ORDER BY enumsortorder) FROM pg_enum"
        " WHERE enumtypid = to_regtype('job_status')"
    )


async def test_empty_database_up_down_up(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        assert await _applied_versions(conn) == []
        await migrator.migrate(conn, "up")
        assert await _applied_versions(conn) == ALL_VERSIONS
        assert NEW_JOB_COLUMNS <= await _columns(conn, "jobs")
        assert "cancelled" in await _enum_labels(conn)
        assert {"last_error", "failures"} <= await _columns(conn, "schedule")

        assert "available_since" in await _columns(conn, "maintenance")
        assert await conn.fetchval("SELECT to_regclass('jobsight_sidecar.console_audit')")
        assert "trace_context" in await _columns(conn, "jobs")
        assert await conn.fetchval("SELECT to_regclass('runner_breakers')")
        await migrator.migrate(conn, "down")  # one step
        assert await _applied_versions(conn) == [1, 2, 3, 4, 5, 6, 7, 8]
        assert await conn.fetchval("SELECT to_regclass('runner_breakers')") is None
        await migrator.migrate(conn, "down")
        assert await _applied_versions(conn) == [1, 2, 3, 4, 5, 6, 7]
        assert "trace_context" not in await _columns(conn, "jobs")
        await migrator.migrate(conn, "down")
        assert await _applied_versions(conn) == [1, 2, 3, 4, 5, 6]
        assert await conn.fetchval("SELECT to_regclass('pgqueue.paused')") is None
        assert await conn.fetchval("SELECT to_regclass('jobs_created_idx')") is None
        await migrator.migrate(conn, "down")
        assert await _applied_versions(conn) == [1, 2, 3, 4, 5]
        assert "available_since" not in await _columns(conn, "maintenance")
        await migrator.migrate(conn, "down")
        assert await _applied_versions(conn) == [1, 2, 3, 4]
        assert "last_error" not in await _columns(conn, "schedule")
        await migrator.migrate(conn, "down")
        assert await _applied_versions(conn) == [1, 2, 3]
        assert await conn.fetchval("SELECT to_regnamespace('jobsight_sidecar')") is None
        await migrator.migrate(conn, "down")
        assert await _applied_versions(conn) == [1, 2]
        assert await conn.fetchval("SELECT to_regnamespace('pgqueue')") is None
        await migrator.migrate(conn, "down", 1)
        assert await _applied_versions(conn) == [1]
        assert not NEW_JOB_COLUMNS & await _columns(conn, "jobs")
        assert "cancelled" not in await _enum_labels(conn)

        await migrator.migrate(conn, "down", 0)
        assert await _applied_versions(conn) == []
        assert await conn.fetchval("SELECT to_regclass('jobs')") is None
        assert await conn.fetchval("SELECT to_regtype('job_status')") is None

        await migrator.migrate(conn, "up")
        assert await _applied_versions(conn) == ALL_VERSIONS
        assert all(s.checksum_matches for s in await migrator.status(conn))
    finally:
        await conn.close()


async def test_seed_shaped_database_keeps_every_row(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await conn.execute(SEED_DDL)
        tenant, user = uuid.uuid4(), uuid.uuid4()
        job_ids = [uuid.uuid4() for _ in range(50)]
        await conn.executemany(
            "INSERT INTO jobs (tenant, job_id, type, metadata, status, user_id)"
            " VALUES ($1, $2, 'generate-invoice', '{\"n\": 1}', 'completed', $3)",
            [(tenant, j, user) for j in job_ids],
        )
        await conn.execute(
            "INSERT INTO job_details (tenant, job_id, step_name, status)"
            " VALUES ($1, $2, 's', 'completed')",
            tenant,
            job_ids[0],
        )
        before = await conn.fetch("SELECT * FROM jobs ORDER BY job_id")

        await migrator.migrate(conn, "up")
        assert await _applied_versions(conn) == ALL_VERSIONS
        after = await conn.fetch("SELECT * FROM jobs ORDER BY job_id")
        assert len(after) == len(before) == 50
        for old, new in zip(before, after, strict=True):
            assert all(new[k] == old[k] for k in old.keys())
            assert new["runner_type"] == "pgqueue" and new["external_id"] is None
        assert await conn.fetchval("SELECT count(*) FROM job_details") == 1

        # The tables were the application's: down to zero removes what we added, not them.
        await migrator.migrate(conn, "down", 0)
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 50
        assert await conn.fetchval("SELECT count(*) FROM job_details") == 1
        assert not NEW_JOB_COLUMNS & await _columns(conn, "jobs")
        assert await _enum_labels(conn) == [
            "pending",
            "processing",
            "completed",
            "failed",
            "active",
            "queued",
        ]
        await migrator.migrate(conn, "up")
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 50
    finally:
        await conn.close()


async def test_down_refuses_while_rows_are_cancelled(migrated_db: str) -> None:
    conn = await asyncpg.connect(migrated_db)
    try:
        await conn.execute(
            "INSERT INTO jobs (tenant, type, status, user_id)"
            " VALUES (gen_random_uuid(), 'x', 'cancelled', gen_random_uuid())"
        )
        with pytest.raises(asyncpg.RaiseError, match="cannot remove job status 'cancelled'"):
            await migrator.migrate(conn, "down", 1)
        assert await _applied_versions(conn) == [1, 2]  # the later ones went down; 0002 did not
        assert "runner_type" in await _columns(conn, "jobs")
    finally:
        await conn.close()


async def test_concurrent_migrate_up_does_not_collide(empty_db: str) -> None:
    conns = [await asyncpg.connect(empty_db) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrator.migrate(c, "up") for c in conns))
        ran = sorted(step.version for steps in results for step in steps)
        assert ran == ALL_VERSIONS  # each step ran exactly once, whichever connection ran it
        assert await _applied_versions(conns[0]) == ALL_VERSIONS
    finally:
        for c in conns:
            await c.close()


async def test_indexes_answer_live_work_without_scanning_history(migrated_db: str) -> None:
    db = await asyncpg.connect(migrated_db)
    await db.execute(
        """INSERT INTO jobs (tenant, type, status, user_id, finished_at)
           SELECT gen_random_uuid(), 'cleanup', 'completed', gen_random_uuid(),
                  now() - interval '1 day' + g * interval '1 second'
           FROM generate_series(1, 20000) g"""
    )
    await db.execute(
        "INSERT INTO jobs (tenant, type, status, user_id) SELECT gen_random_uuid(), 'cleanup',"
        " 'queued', gen_random_uuid() FROM generate_series(1, 10)"
    )
    await db.execute("ANALYZE jobs")
    unfinished = await db.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT type, status, count(*) FROM jobs"
        " WHERE status IN ('pending', 'queued', 'processing', 'active') GROUP BY 1, 2"
    )
    finished = await db.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT count(*) FROM jobs"
        " WHERE finished_at > now() - interval '5 minutes'"
    )
    await db.close()
    assert "jobs_unfinished_idx" in unfinished and "Seq Scan" not in unfinished
    assert "jobs_finished_at_idx" in finished and "Seq Scan" not in finished
