"""Every change of a job's status, recorded by a trigger in the test's database, checked against
the allowed transitions (runners/status.py): the SQL the engines run, audited as it runs."""

from __future__ import annotations

import asyncpg

from jobsight.runners.status import WAITING, can_transition

AUDIT = """
CREATE TABLE IF NOT EXISTS status_audit (old_status text, new_status text NOT NULL, job_id uuid);
CREATE OR REPLACE FUNCTION audit_job_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO status_audit VALUES (NULL, NEW.status::text, NEW.job_id);
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    INSERT INTO status_audit VALUES (OLD.status::text, NEW.status::text, NEW.job_id);
  END IF;
  RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER audit_job_status AFTER INSERT OR UPDATE OF status ON jobs
  FOR EACH ROW EXECUTE FUNCTION audit_job_status();
"""


async def install_status_audit(conn: asyncpg.Connection) -> None:
    await conn.execute(AUDIT)


async def recorded_transitions(conn: asyncpg.Connection) -> list[tuple[str | None, str]]:
    rows = await conn.fetch("SELECT DISTINCT old_status, new_status FROM status_audit")
    return [(r["old_status"], r["new_status"]) for r in rows]


async def illegal_transitions(conn: asyncpg.Connection) -> list[tuple[str | None, str]]:
    """Recorded changes the lifecycle forbids: a new job not waiting, or a move it disallows."""
    return [
        (old, new)
        for old, new in await recorded_transitions(conn)
        if (new not in WAITING if old is None else not can_transition(old, new))
    ]
