"""What a console URL asks for, validated: the jobs search's filters and its keyset cursor.
Pure: query parameters in, typed values (or one clear error) out, and back to a query string,
so every page has a stable URL that can be pasted into an incident channel."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from uuid import UUID

# A job's status as the search offers it, and the stored statuses each covers ('active' is the
# seed schema's synonym of 'processing'; 'pending' and 'queued' both wait).
STATUSES: dict[str, tuple[str, ...]] = {
    "waiting": ("pending", "queued"),
    "running": ("processing", "active"),
    "completed": ("completed",),
    "failed": ("failed",),
    "cancelled": ("cancelled",),
}
RUNNERS = ("pgqueue", "temporal")
MAX_TEXT = 200
RELATIVE = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}


class FilterError(ValueError):
    """A query parameter the console cannot use; the message names it."""


@dataclass(frozen=True)
class JobFilter:
    name: str = ""
    status: str = ""
    tenant: UUID | None = None
    version: str = ""
    runner: str = ""
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    job_id: UUID | None = None

    @property
    def statuses(self) -> tuple[str, ...]:
        return STATUSES.get(self.status, ())

    def query(self) -> dict[str, str]:
        """The filter as query parameters (the ones set), for links and the next page."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == "":
                continue
            out[f.name] = _iso(value) if isinstance(value, datetime) else str(value)
        return out


@dataclass(frozen=True)
class Cursor:
    """The last row shown: the next page starts after it."""

    created_at: datetime
    job_id: UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.job_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            when, _, job_id = raw.partition("|")
            return cls(datetime.fromisoformat(when), UUID(job_id))
        except (ValueError, UnicodeDecodeError):
            raise FilterError("after: not a page cursor of this console") from None


def _text(params: Mapping[str, str], key: str) -> str:
    value = params.get(key, "").strip()
    if len(value) > MAX_TEXT or "\x00" in value:
        raise FilterError(f"{key}: at most {MAX_TEXT} characters, no NUL")
    return value


def _uuid(params: Mapping[str, str], key: str) -> UUID | None:
    value = params.get(key, "").strip()
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise FilterError(f"{key}: not a UUID") from None


def _time(params: Mapping[str, str], key: str, now: datetime) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or a time ago: 15m, 1h, 6h, 24h, 7d."""
    value = params.get(key, "").strip()
    if not value:
        return None
    if value in RELATIVE:
        return now - timedelta(seconds=RELATIVE[value])
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        choices = ", ".join(RELATIVE)
        raise FilterError(f"{key}: an ISO 8601 time or one of {choices}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_filter(params: Mapping[str, str], now: datetime | None = None) -> JobFilter:
    now = now or datetime.now(UTC)
    status = _text(params, "status")
    if status and status not in STATUSES:
        raise FilterError(f"status: one of {', '.join(STATUSES)}")
    runner = _text(params, "runner")
    if runner and runner not in RUNNERS:
        raise FilterError(f"runner: one of {', '.join(RUNNERS)}")
    return JobFilter(
        name=_text(params, "name"),
        status=status,
        tenant=_uuid(params, "tenant"),
        version=_text(params, "version"),
        runner=runner,
        since=_time(params, "since", now),
        until=_time(params, "until", now),
        job_id=_uuid(params, "job_id"),
    )


def parse_cursor(params: Mapping[str, str]) -> Cursor | None:
    value = params.get("after", "").strip()
    return Cursor.decode(value) if value else None


def _iso(value: datetime) -> str:
    return value.isoformat()


def link(path: str, params: Mapping[str, str]) -> str:
    return f"{path}?{urlencode(sorted(params.items()))}" if params else path
