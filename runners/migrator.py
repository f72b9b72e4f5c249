"""Applies the numbered SQL migrations in `migrations/` under a Postgres advisory lock.

A migration file is `NNNN_name.sql` with a `-- migrate:up` part and a `-- migrate:down` part.
Each step runs in its own transaction together with its row in `jobsight_migrations`, so a failed
step leaves the database exactly as it was before that step.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

MIGRATIONS_TABLE = "jobsight_migrations"
# pg_advisory_lock key: the first 8 bytes of sha1("jobsight:migrations"), fixed forever.
ADVISORY_LOCK_KEY = 0x2F1D6B7A51C3E901

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MARKER = re.compile(r"^--\s*migrate:(up|down)\s*$", re.MULTILINE)


class MigrationError(Exception):
    """A migration file is malformed, or the requested target does not exist."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: str
    down: str
    checksum: str


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    applied_at: datetime | None
    checksum_matches: bool | None  # None when not applied


def parse_migration(file_name: str, text: str) -> Migration:
    """Splits one migration file into its up and down parts."""
    match = _FILE_NAME.match(file_name)
    if not match:
        raise MigrationError(f"{file_name}: name must look like 0001_some_name.sql")
    parts: dict[str, str] = {}
    markers = list(_MARKER.finditer(text))
    for i, marker in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        direction = marker.group(1)
        if direction in parts:
            raise MigrationError(f"{file_name}: more than one 'migrate:{direction}' part")
        parts[direction] = text[marker.end() : end].strip()
    for direction in ("up", "down"):
        if not parts.get(direction):
            raise MigrationError(f"{file_name}: missing or empty '-- migrate:{direction}' part")
    return Migration(
        version=int(match.group(1)),
        name=match.group(2),
        up=parts["up"],
        down=parts["down"],
        checksum=hashlib.sha256(text.encode()).hexdigest(),
    )


def load_migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found = [
        parse_migration(entry.name, entry.read_text(encoding="utf-8"))
        for entry in resources.files("jobsight.migrations").iterdir()
        if entry.name.endswith(".sql")
    ]
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must be 1..N without gaps, found {versions}")
    return found


def plan(
    migrations: list[Migration], applied: set[int], direction: str, target: int | None
) -> list[Migration]:
    """The steps that take the database from `applied` to `target`, in the order to run them.

    `up` without a target means the newest version; `down` without a target means one step down.
    """
    newest = max((m.version for m in migrations), default=0)
    current = max(applied, default=0)
    if target is not None and not 0 <= target <= newest:
        raise MigrationError(f"--to {target}: versions run from 0 to {newest}")
    if direction == "up":
        goal = newest if target is None else target
        return [m for m in migrations if m.version <= goal and m.version not in applied]
    if direction == "down":
        goal = max(current - 1, 0) if target is None else target
        steps = [m for m in migrations if m.version > goal and m.version in applied]
        return sorted(steps, key=lambda m: m.version, reverse=True)
    raise MigrationError(f"direction must be 'up' or 'down', not {direction!r}")


async def _ensure_table(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS jobsight_migrations (
              version integer PRIMARY KEY,
              name text NOT NULL,
              checksum text NOT NULL,
              applied_at timestamptz NOT NULL DEFAULT now())"""
    )


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM jobsight_migrations")
    return {row["version"]: row for row in rows}


async def migrate(
    conn: asyncpg.Connection, direction: str = "up", target: int | None = None
) -> list[Migration]:
    """Runs the planned steps under the advisory lock; returns the steps it ran."""
    migrations = load_migrations()
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await _ensure_table(conn)
        steps = plan(migrations, set(await _applied(conn)), direction, target)
        for step in steps:
            async with conn.transaction():
                if direction == "up":
                    await conn.execute(step.up)
                    await conn.execute(
                        "INSERT INTO jobsight_migrations (version, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        step.version,
                        step.name,
                        step.checksum,
                    )
                else:
                    await conn.execute(step.down)
                    await conn.execute(
                        "DELETE FROM jobsight_migrations WHERE version = $1",
                        step.version,
                    )
        return steps
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


async def status(conn: asyncpg.Connection) -> list[MigrationState]:
    """Every known migration with whether (and when) it is applied."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", MIGRATIONS_TABLE)
    applied = await _applied(conn) if exists else {}
    states = []
    for m in load_migrations():
        row = applied.get(m.version)
        states.append(
            MigrationState(
                version=m.version,
                name=m.name,
                applied_at=row["applied_at"] if row else None,
                checksum_matches=(row["checksum"] == m.checksum) if row else None,
            )
        )
    return states
