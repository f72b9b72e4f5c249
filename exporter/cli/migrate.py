"""`jobsight migrate`: apply, revert or list the schema migrations."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg

from jobsight.cli.common import add_database_url, connect, database_url
from jobsight.settings import SettingError


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted, for SQL the user is told to run."""
    return '"' + name.replace('"', '""') + '"'


def register(sub: Any) -> None:
    migrate = sub.add_parser(
        "migrate",
        help="apply, revert or list the schema migrations",
        description="Applies the jobs/job_details schema migrations under an advisory lock.",
    )
    migrate.add_argument(
        "action",
        choices=["up", "down", "status"],
        help="up: apply pending migrations; down: revert (one step, or to --to); status: list",
    )
    migrate.add_argument(
        "--to",
        type=int,
        metavar="N",
        help="target version (up: default newest; down: default one step back; 0 = nothing)",
    )
    add_database_url(migrate)
    migrate.set_defaults(run=lambda a: asyncio.run(apply(a)))


async def apply(args: argparse.Namespace) -> int:
    from jobsight.runners import migrator

    conn = await connect(database_url(args))
    try:
        if args.action == "status":
            for state in await migrator.status(conn):
                mark = "applied " if state.applied_at else "pending "
                when = state.applied_at.isoformat(timespec="seconds") if state.applied_at else ""
                drift = "  (file changed since applied)" if state.checksum_matches is False else ""
                print(f"{state.version:04d} {mark} {state.name:<24} {when}{drift}")
            return 0
        steps = await migrator.migrate(conn, args.action, args.to)
        if not steps:
            print(f"migrate {args.action}: nothing to do")
        for step in steps:
            print(f"migrate {args.action}: {step.version:04d}_{step.name}")
        return 0
    except migrator.MigrationError as exc:
        raise SettingError(str(exc)) from None
    except asyncpg.InsufficientPrivilegeError as exc:
        role, db = await conn.fetchrow("SELECT current_user, current_database()")
        raise SettingError(
            f"migrate {args.action}: role {role!r} may not change the schema ({exc}); run it as "
            f"the database owner, or grant: GRANT CREATE ON DATABASE {quote_ident(db)} TO "
            f"{quote_ident(role)}; GRANT CREATE ON SCHEMA public TO {quote_ident(role)};"
        ) from None
    finally:
        await conn.close()
