"""How a source is doing, as the poller saw it: kept beside its last good snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SourceStatus:
    up: bool = False
    last_success: float | None = None  # Unix time of the last good poll
    last_attempt: float | None = None
    duration: float | None = None  # seconds the last poll took
    error: str | None = None  # why the last poll failed (no secrets: messages only)


@dataclass
class SourceView:
    """What the collector and the HTTP handlers read: the last good snapshot and the status."""

    snapshot: Any = None
    status: SourceStatus | None = None


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}"[:300] if text else name
