"""Sending jobs to the queue: validate everything first, then one round trip for the batch."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from runners.interface import HandlerConfig, RetryPolicy, ScheduleOptions, ScheduleResult
from runners.pgqueue import sql
from runners.registry import HandlerRegistry
from runners.service import SYSTEM_USER
from runners.validation import check_job_name, check_uuid, encode_payload

_DEFAULT_RETRY = RetryPolicy()
_DEFAULT_TIMEOUT = HandlerConfig.__dataclass_fields__["timeout"].default


@dataclass(frozen=True)
class Send:
    job_name: str
    tenant: uuid.UUID | str
    data: dict[str, Any]
    options: ScheduleOptions = field(default_factory=ScheduleOptions)
    retry_of: uuid.UUID | None = None
    schedule_id: uuid.UUID | None = None


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


async def send(
    db: asyncpg.Connection | asyncpg.Pool,
    registry: HandlerRegistry,
    items: list[Send],
    *,
    user_id: uuid.UUID | str | None = None,
    max_payload_bytes: int,
    require_handler: bool = True,
) -> list[ScheduleResult]:
    """Queues every item (queue row + `jobs` row, one statement) and returns one result each.
    A singleton key already held by a waiting or active job returns that job, `duplicate=True`.
    Raises before writing anything when any item is invalid or names an unknown job."""
    user = SYSTEM_USER if user_id is None else check_uuid("user_id", user_id)
    columns: list[list[Any]] = [[] for _ in range(15)]
    for item in items:
        name = check_job_name(item.job_name)
        if require_handler or name in registry:
            config = registry.get(name)
            retry, timeout, dead_letter = config.retry, config.timeout, config.dead_letter
        else:
            retry, timeout, dead_letter = _DEFAULT_RETRY, _DEFAULT_TIMEOUT, None
        row = (
            uuid.uuid4(),
            name,
            check_uuid("tenant", item.tenant),
            encode_payload(item.data, "data", max_payload_bytes),
            item.options.priority,
            item.options.singleton_key,
            item.options.run_at,
            retry.max_attempts,
            _ms(retry.initial_interval.total_seconds()),
            retry.backoff_coefficient,
            _ms(retry.max_interval.total_seconds()),
            None if timeout is None else _ms(timeout.total_seconds()),
            dead_letter,
            item.retry_of,
            item.schedule_id,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    if not items:
        return []
    args = [*columns[:13], user, *columns[13:]]
    inserted = {row["job_id"] for row in await db.fetch(sql.SEND, *args)}
    results = []
    for item, job_id, name, key in zip(items, columns[0], columns[1], columns[5], strict=True):
        if job_id in inserted:
            results.append(ScheduleResult(job_id=job_id, external_id=str(job_id)))
            continue
        holder = await db.fetchval(sql.SINGLETON_HOLDER, name, key)
        if holder is None:  # the holder finished in between: the key is free again, send anew
            again = await send(
                db,
                registry,
                [item],
                user_id=user,
                max_payload_bytes=max_payload_bytes,
                require_handler=require_handler,
            )
            results.extend(again)  # fmt: skip
            continue
        results.append(ScheduleResult(job_id=holder, external_id=str(holder), duplicate=True))
    return results
