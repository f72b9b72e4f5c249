"""How a source is doing, as the poller saw it: kept beside its last good snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

STALE_AFTER_INTERVALS = 3  # no success in this many poll intervals: stale


class Condition(StrEnum):
    """How far a source's data can be vouched for now."""

    UP = "up"  # polled successfully, recently: its numbers are current
    STALE = "stale"  # no success in STALE_AFTER_INTERVALS poll intervals (e.g. a stuck leader)
    DOWN = "down"  # its last poll failed
    UNSUPPORTED = "unsupported"  # it found a release it does not read: not an outage
    PENDING = "pending"  # not polled yet


@dataclass
class SourceStatus:
    up: bool = False
    last_success: float | None = None  # Unix time of the last good poll
    last_attempt: float | None = None
    duration: float | None = None  # seconds the last poll took
    error: str | None = None  # why the last poll failed (no secrets: messages only)
    unsupported: bool = False  # the failure was a refusal of what it found (UnsupportedSource)


@dataclass
class SourceView:
    """What the collector and the HTTP handlers read: the last good snapshot and the status."""

    snapshot: Any = None
    status: SourceStatus | None = None


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}"[:300] if text else name


class UnsupportedSource(Exception):
    """A source refuses what it found (e.g. a pg-boss schema older than it reads): reported
    once, shown, and its triggers left to the sources that work; not an outage."""


def condition(view: SourceView | None, interval: float, now: float) -> Condition:
    """The source's condition now, from its view and its poll interval."""
    status = view.status if view is not None else None
    if status is None:
        return Condition.PENDING
    if status.unsupported:
        return Condition.UNSUPPORTED
    if not status.up:
        return Condition.DOWN
    if view is None or view.snapshot is None:
        return Condition.PENDING
    if status.last_success is None or now - status.last_success > STALE_AFTER_INTERVALS * interval:
        return Condition.STALE
    return Condition.UP
