"""How the runners open PostgreSQL connections: bounded everywhere, so that a database that stops
answering (a black-holed network path, a frozen server) is noticed within a known time rather
than after the kernel's TCP timeout (about 15 minutes of retransmissions on Linux).

- connecting is bounded by CONNECT_TIMEOUT_S;
- every command is bounded on the client (asyncpg's command_timeout): the server's own
  statement_timeout cannot fire if the server is unreachable;
- each socket gets TCP keepalives (idle KEEPALIVE_IDLE_S, then every KEEPALIVE_INTERVAL_S,
  KEEPALIVE_COUNT probes) so an idle connection (the LISTEN one) notices a dead path, and
  TCP_USER_TIMEOUT so data left unacknowledged that long closes the connection."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import asyncpg

from jobsight.runners.errors import SchemaMissingError

CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
USER_TIMEOUT_MS = (KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT) * 1000
COMMAND_GRACE_S = 5.0  # past the statement timeout, the client gives up on an answer


def command_timeout(statement_timeout_s: float) -> float:
    """The client's limit on one command: the server's statement timeout and a grace."""
    return statement_timeout_s + COMMAND_GRACE_S


def keepalive_options() -> list[tuple[int, int, int]]:
    """The socket options set on each connection (those this platform has)."""
    wanted = [
        (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
        (socket.IPPROTO_TCP, "TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        (socket.IPPROTO_TCP, "TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        (socket.IPPROTO_TCP, "TCP_KEEPCNT", KEEPALIVE_COUNT),
        (socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", USER_TIMEOUT_MS),
    ]
    return [(level, getattr(socket, name), value) for level, name, value in wanted
            if hasattr(socket, name)]  # fmt: skip


async def tune(conn: asyncpg.Connection) -> None:
    """Sets the keepalive options on a new connection's socket (a pool's `init`). A Unix
    socket or a transport that hides its socket is left as it is."""
    transport: Any = getattr(conn, "_transport", None)  # asyncpg exposes no public handle
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    for level, option, value in keepalive_options():
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, value)


async def connect(url: str, **options: Any) -> asyncpg.Connection:
    """One connection, bounded and tuned."""
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S, **options)
    await tune(conn)
    return conn


async def create_pool(url: str, *, tables: tuple[str, ...] = (), **options: Any) -> asyncpg.Pool:
    """A pool whose every connection is bounded and tuned. With `tables`, it also checks they
    exist, so a database never migrated is one clear error at start, not one per send."""
    pool = await asyncpg.create_pool(url, timeout=CONNECT_TIMEOUT_S, init=tune, **options)
    if tables:
        found = await pool.fetch(
            "SELECT t, to_regclass(t) IS NOT NULL AS ok FROM unnest($1::text[]) t", list(tables)
        )
        missing = [r["t"] for r in found if not r["ok"]]
        if missing:
            await pool.close()
            raise SchemaMissingError(missing)
    return pool
