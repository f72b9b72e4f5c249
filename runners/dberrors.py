"""How the engines tell the database's errors apart: trouble with the database (worth retrying,
it may pass) and a refusal of the rows themselves (the same rows will be refused again)."""

from __future__ import annotations

import asyncpg

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def about_the_rows(exc: BaseException) -> bool:
    """The database refused the data (SQLSTATE classes 22 and 23), or asyncpg could not encode
    an argument: the same rows will be refused again, whatever the connection does."""
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        return True  # asyncpg's client-side DataError
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    return isinstance(exc, asyncpg.PostgresError) and sqlstate[:2] in ("22", "23")
