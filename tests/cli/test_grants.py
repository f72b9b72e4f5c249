"""`jobsight grants`, run verbatim: on a database with and without pg-boss, the sidecar then runs
as that role with every source up, and writes nothing outside its own schema (the server logs
every statement of the role that changes data) (issue 17)."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

from jobsight.devstack.localstack import LocalStack
from tests.support.pgboss import run_scenario
from tests.support.processes import jobsight
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import eventually

ROLE = "jobsight_ro"
SOURCES = ("jobs", "pgqueue", "pgboss", "postgres")
CHANGES = re.compile(r"\b(INSERT|UPDATE|DELETE|TRUNCATE|CREATE|ALTER|DROP|COPY)\b", re.I)


def printed_grants() -> str:
    done = jobsight("grants", "--role", ROLE, "--sources", ",".join(SOURCES))
    assert done.returncode == 0, done.stderr
    return done.stdout


def as_role(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{ROLE}:ro-Pa55@")


async def every_source_up(sidecar: SidecarProcess) -> bool:
    return all([await sidecar.value("jobsight_source_up", source=s) == 1 for s in SOURCES])


@pytest.mark.parametrize("with_pgboss", [False, True], ids=["without-pgboss", "with-pgboss"])
async def test_printed_grants_run_verbatim_and_suffice(
    with_pgboss: bool,
    migrated_db: str,
    stack: LocalStack,
    tmp_path: Path,
    pgboss_installs: dict[str, str],
) -> None:
    if with_pgboss:
        await run_scenario(pgboss_installs["v12"], "v12", migrated_db)
    admin = await asyncpg.connect(migrated_db)
    log = stack.postgres.server_log if stack.postgres else None
    assert log is not None and log.exists()
    try:
        if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ROLE):
            await admin.execute(f"DROP OWNED BY {ROLE}")  # left by an earlier run
        await admin.execute(f"DROP ROLE IF EXISTS {ROLE}")
        await admin.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD 'ro-Pa55'")
        await admin.execute(printed_grants())  # verbatim
        await admin.execute(f"ALTER ROLE {ROLE} SET log_statement = 'mod'")
        # A table created later by the same owner is readable too (default privileges).
        await admin.execute("CREATE TABLE pgqueue.added_later (id int)")
        logged_from = log.stat().st_size
        sidecar = SidecarProcess(as_role(migrated_db), tmp_path, JOBSIGHT_SOURCES=",".join(SOURCES))
        sidecar.start()
        try:
            await eventually(lambda: every_source_up(sidecar), 30, "every source up as the role")

            async def stored() -> bool:  # the leader has written its state: a write was made
                count = await admin.fetchval("SELECT count(*) FROM jobsight_sidecar.source_state")
                return bool(count >= len(SOURCES))

            await eventually(stored, 30, "the sidecar's state stored in its own schema")
            assert await every_source_up(sidecar)
        finally:
            sidecar.stop()
        assert "ro-Pa55" not in sidecar.log()  # its password, in no line it printed
        with log.open("rb") as handle:
            handle.seek(logged_from)
            text = handle.read().decode(errors="replace")
        entries = re.split(r"\n(?=\d{4}-\d\d-\d\d )", text)  # one per logged message
        statements = [
            e for e in entries
            if re.search(r"LOG:  (statement|execute [^:]*):", e) and CHANGES.search(e)
        ]  # fmt: skip
        assert statements, text[-3000:]  # the sidecar's own writes are there
        outside = [s for s in statements if "jobsight_sidecar." not in s]
        assert outside == [], outside[:5]
        reader = await asyncpg.connect(as_role(migrated_db))
        try:
            assert await reader.fetchval("SELECT count(*) FROM pgqueue.added_later") == 0
            assert await reader.fetchval("SELECT count(*) FROM runner_breakers") == 0  # 0009
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute("DELETE FROM jobs")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute("INSERT INTO pgqueue.paused (name) VALUES ('x')")
            # The console's audit log is the sidecar's to write (its ids from a sequence).
            from jobsight.console.actions import audited_end, audited_start

            entry = await audited_start(reader, "alice", "pause", "x", [])
            await audited_end(reader, entry, "done", "")
        finally:
            await reader.close()
    finally:
        await admin.execute(f"ALTER ROLE {ROLE} RESET log_statement")
        await admin.execute("DROP TABLE IF EXISTS pgqueue.added_later")
        await admin.execute(f"DROP OWNED BY {ROLE}")
        await admin.execute(f"DROP ROLE {ROLE}")
        await admin.close()


def test_grants_refuses_a_bad_role_name() -> None:
    done = jobsight("grants", "--role", "x; DROP TABLE jobs")
    assert done.returncode == 2 and "grants:" in done.stderr
