"""Sending jobs to the queue: validate everything first, then one round trip for the batch."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from jobsight.runners.ids import new_job_ids
from jobsight.runners.interface import DEFAULT_TIMEOUT, RetryPolicy, ScheduleOptions, ScheduleResult
from jobsight.runners.pgqueue import sql
from jobsight.runners.registry import HandlerRegistry
from jobsight.runners.service import SYSTEM_USER
from jobsight.runners.tracing import current_traceparent
from jobsight.runners.validation import check_job_name, check_uuid, encode_payload

_DEFAULT_RETRY = RetryPolicy()
# A job's retry policy, attempt timeout and dead-letter name.
JobSettings = tuple[RetryPolicy, timedelta | None, str | None]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


async def send(
    db: asyncpg.Connection | asyncpg.Pool,
    registry: HandlerRegistry,
    job_name: str,
    tenant: uuid.UUID | str,
    payloads: list[dict[str, Any]],
    *,
    options: ScheduleOptions | None = None,
    user_id: uuid.UUID | str | None = None,
    max_payload_bytes: int,
    require_handler: bool = True,
    retry_of: uuid.UUID | None = None,
    schedule_id: uuid.UUID | None = None,
    inherited: JobSettings | None = None,
) -> list[ScheduleResult]:
    """Queues one job per payload (queue row + `jobs` row, one statement for the batch) and
    returns one result each. A singleton key already held by a waiting or active job returns
    that job, `duplicate=True`. Raises before writing anything when any input is invalid or the
    job name has no handler (unless `require_handler` is False, for fired schedules, or the
    settings are `inherited`, from the failed job a retry re-runs)."""
    name = check_job_name(job_name)
    tenant_id = check_uuid("tenant", tenant)
    user = SYSTEM_USER if user_id is None else check_uuid("user_id", user_id)
    opts = options or ScheduleOptions()
    if name in registry or (require_handler and inherited is None):
        config = registry.get(name)
        retry, timeout, dead_letter = config.retry, config.timeout, config.dead_letter
    elif inherited is not None:
        retry, timeout, dead_letter = inherited
    else:
        retry, timeout, dead_letter = _DEFAULT_RETRY, DEFAULT_TIMEOUT, None
    encoded = [encode_payload(p, "data", max_payload_bytes) for p in payloads]
    if not encoded:
        return []
    ids = new_job_ids(len(encoded))
    args = (
        ids, encoded, name, tenant_id, opts.priority, opts.singleton_key, opts.run_at,
        retry.max_attempts, _ms(retry.initial_interval.total_seconds()), retry.backoff_coefficient,
        _ms(retry.max_interval.total_seconds()),
        None if timeout is None else _ms(timeout.total_seconds()), dead_letter, user, retry_of,
        schedule_id, current_traceparent(),
    )  # fmt: skip
    if opts.singleton_key is None:
        status = await db.execute(sql.SEND, *args)
        if status != f"INSERT 0 {len(ids)}":
            raise RuntimeError(f"pgqueue send wrote {status!r} for {len(ids)} jobs")
        return [ScheduleResult(job_id=i, external_id=str(i)) for i in ids]
    inserted = {row["job_id"] for row in await db.fetch(sql.SEND_SINGLETON, *args)}
    results = []
    for job_id, payload in zip(ids, payloads, strict=True):
        if job_id in inserted:
            results.append(ScheduleResult(job_id=job_id, external_id=str(job_id)))
            continue
        holder = await db.fetchval(sql.SINGLETON_HOLDER, name, opts.singleton_key)
        if holder is None:  # the holder finished in between: the key is free again, send anew
            again = await send(
                db, registry, name, tenant_id, [payload], options=opts, user_id=user,
                max_payload_bytes=max_payload_bytes, require_handler=require_handler,
                retry_of=retry_of, schedule_id=schedule_id,
            )  # fmt: skip
            results.extend(again)
            continue
        results.append(ScheduleResult(job_id=holder, external_id=str(holder), duplicate=True))
    return results
