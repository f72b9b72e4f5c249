"""The published state: each source's last good snapshot and its status, written by the leader
(through its lock connection) and read by followers and by the next leader."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

import asyncpg

from jobsight import codec
from jobsight.sidecar.leadership import Leadership
from jobsight.sources.status import SourceStatus, SourceView

log = logging.getLogger(__name__)

SAVE = """
INSERT INTO jobsight_sidecar.source_state (instance, source, snapshot, status, leader, updated_at)
VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, now())
ON CONFLICT (instance, source) DO UPDATE
SET snapshot = coalesce(EXCLUDED.snapshot, source_state.snapshot), status = EXCLUDED.status,
    leader = EXCLUDED.leader, updated_at = now()
"""
LOAD = """
SELECT source, snapshot::text AS snapshot, status::text AS status
FROM jobsight_sidecar.source_state WHERE instance = $1
"""
LEADER = """
SELECT holder, host, pid, version, extract(epoch FROM since)::float8 AS since,
       extract(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_age
FROM jobsight_sidecar.leader WHERE instance = $1
"""


async def save(
    leadership: Leadership, instance: str, source: str, snapshot: Any | None, status: SourceStatus
) -> None:
    body = codec.dumps(snapshot) if snapshot is not None else None
    await leadership.execute(
        SAVE, instance, source, body, json.dumps(asdict(status)), leadership.identity.holder
    )


async def load(
    conn: asyncpg.Connection | asyncpg.Pool, instance: str, snapshot_types: dict[str, type]
) -> dict[str, SourceView]:
    """The published views of the known sources; an unreadable snapshot is skipped and logged
    (a newer or older sidecar may have written it), never fatal."""
    views: dict[str, SourceView] = {}
    for row in await conn.fetch(LOAD, instance):
        kind = snapshot_types.get(row["source"])
        if kind is None:
            continue
        snapshot: Any = None
        if row["snapshot"] is not None:
            try:
                snapshot = codec.loads(kind, row["snapshot"])
            except (TypeError, ValueError, KeyError) as exc:
                log.warning("ignoring the stored %s snapshot: %s", row["source"], exc)
        status = codec.from_jsonable(SourceStatus, json.loads(row["status"]))
        views[row["source"]] = SourceView(snapshot, status)
    return views


async def leader_info(
    conn: asyncpg.Connection | asyncpg.Pool, instance: str
) -> dict[str, Any] | None:
    row = await conn.fetchrow(LEADER, instance)
    return dict(row) if row else None
