"""One leader per group of sidecars (JOBSIGHT_INSTANCE), by a session-level Postgres advisory
lock held on a dedicated connection. Every write of shared state goes through that connection, so
only the lock holder can write: when its connection dies the lock is released by the server, and
the writes of a leader that lost it fail instead of landing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

CLAIM = """
INSERT INTO jobsight_sidecar.leader (instance, holder, host, pid, version, since, heartbeat_at)
VALUES ($1, $2, $3, $4, $5, now(), now())
ON CONFLICT (instance) DO UPDATE
SET holder = EXCLUDED.holder, host = EXCLUDED.host, pid = EXCLUDED.pid,
    version = EXCLUDED.version, since = now(), heartbeat_at = now()
"""
HEARTBEAT = "UPDATE jobsight_sidecar.leader SET heartbeat_at = now() WHERE instance = $1"


class NotLeader(Exception):
    """This sidecar does not (or no longer) hold the leader lock."""


def lock_key(instance: str) -> int:
    """A stable signed 64-bit advisory lock key for the group (first 8 bytes of a SHA-1)."""
    digest = hashlib.sha1(f"jobsight:sidecar:{instance}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class Identity:
    holder: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    version: str = ""


class Leadership:
    def __init__(
        self,
        url: str,
        instance: str,
        identity: Identity,
        timeout: float,
        server_settings: dict[str, str],
    ) -> None:
        self._url = url
        self._instance = instance
        self.identity = identity
        self._timeout = timeout
        self._server_settings = server_settings
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def is_leader(self) -> bool:
        return self._conn is not None

    async def refresh(self) -> bool:
        """Keeps or tries to take the lock; True while this sidecar leads."""
        async with self._lock:
            if self._conn is not None:
                try:
                    await asyncio.wait_for(
                        self._conn.execute(HEARTBEAT, self._instance), self._timeout
                    )
                    return True
                except (
                    asyncpg.PostgresError,
                    OSError,
                    TimeoutError,
                    asyncpg.InterfaceError,
                ) as exc:
                    log.warning("lost the leader connection: %s", exc)
                    await self._drop()
                    return False
            return await self._try_take()

    async def _try_take(self) -> bool:
        try:
            conn = await asyncpg.connect(
                self._url, timeout=self._timeout, server_settings=self._server_settings
            )
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            log.debug("leader election: cannot connect: %s", exc)
            return False
        try:
            got = await asyncio.wait_for(
                conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(self._instance)),
                self._timeout,
            )
            if not got:
                await conn.close(timeout=self._timeout)
                return False
            ident = self.identity
            await asyncio.wait_for(
                conn.execute(
                    CLAIM, self._instance, ident.holder, ident.host, ident.pid, ident.version
                ),
                self._timeout,
            )
        except (asyncpg.PostgresError, OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            log.warning("leader election failed: %s", exc)
            conn.terminate()
            return False
        self._conn = conn
        log.info("this sidecar (%s) is now the leader of %r", self.identity.holder, self._instance)
        return True

    async def execute(self, query: str, *args: Any) -> None:
        """Runs a write as the leader; raises NotLeader when the lock is not (or no longer) held."""
        async with self._lock:
            if self._conn is None:
                raise NotLeader("not the leader")
            try:
                await asyncio.wait_for(self._conn.execute(query, *args), self._timeout)
            except (
                OSError,
                TimeoutError,
                asyncpg.InterfaceError,
                asyncpg.PostgresConnectionError,
            ) as exc:
                await self._drop()
                raise NotLeader(f"lost the leader connection: {exc}") from exc

    async def resign(self) -> None:
        async with self._lock:
            if self._conn is not None:
                try:
                    await asyncio.wait_for(self._conn.close(), self._timeout)
                except (OSError, TimeoutError, asyncpg.InterfaceError):
                    self._conn.terminate()
                self._conn = None

    async def _drop(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
