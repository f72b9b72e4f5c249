"""A circuit breaker for an engine's scheduling calls: pure state, no I/O, an injectable clock.

closed     every call goes through; `failures` failures within `window` seconds open it.
open       calls are refused (fail fast, or go to the fallback) for `cooldown` seconds.
half_open  after the cool-down, one call at a time is let through as a probe: its success closes
           the breaker, its failure opens it again for another cool-down.

A call asks for a Permit before it runs and reports its outcome on that permit; an outcome that
arrives after the breaker moved on (a slow call of the closed state ending while it is open)
is counted as a failure only while the breaker is still closed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from jobsight.runners.errors import ValidationError


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSettings:
    """JOB_RUNNER_BREAKER_FAILURES within JOB_RUNNER_BREAKER_WINDOW open it for
    JOB_RUNNER_BREAKER_COOLDOWN (runners/factory.py reads them)."""

    failures: int = 5
    window: float = 30.0  # seconds
    cooldown: float = 15.0  # seconds

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ValidationError("JOB_RUNNER_BREAKER_FAILURES", "must be at least 1")
        if self.window <= 0 or self.cooldown <= 0:
            raise ValidationError(
                "JOB_RUNNER_BREAKER_WINDOW / _COOLDOWN", "must be positive durations"
            )


@dataclass(frozen=True)
class Permit:
    probe: bool  # the half-open state's one trial call
    generation: int  # which opening of the breaker it was issued in


@dataclass(frozen=True)
class Change:
    old: BreakerState
    new: BreakerState
    reason: str


class CircuitBreaker:
    def __init__(
        self,
        settings: BreakerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[Change], None] | None = None,
    ) -> None:
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._generation = 0
        self._probing = False
        self.last_error = ""

    @property
    def state(self) -> BreakerState:
        return self._state

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self._state != BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.settings.cooldown - self._clock())

    def acquire(self) -> Permit | None:
        """A permit to call the engine, or None: refused (open, or a probe is in flight)."""
        if self._state == BreakerState.CLOSED:
            return Permit(False, self._generation)
        if self._state == BreakerState.OPEN:
            if self.retry_in() > 0:
                return None
            self._move(BreakerState.HALF_OPEN, "cool-down over; probing with the next call")
        if self._probing:
            return None
        self._probing = True
        return Permit(True, self._generation)

    def success(self, permit: Permit) -> None:
        if permit.probe and self._is_current(permit):
            self._probing = False
            self._failures.clear()
            self._move(BreakerState.CLOSED, "the probe call succeeded")

    def failure(self, permit: Permit, error: str) -> None:
        self.last_error = error
        if permit.probe and self._is_current(permit):
            self._probing = False
            self._open(f"the probe call failed: {error}")
            return
        if self._state != BreakerState.CLOSED or permit.generation != self._generation:
            return
        now = self._clock()
        self._failures.append(now)
        while self._failures and self._failures[0] <= now - self.settings.window:
            self._failures.popleft()
        if len(self._failures) >= self.settings.failures:
            self._open(
                f"{len(self._failures)} failures within {self.settings.window:g} s (last: {error})"
            )

    def release(self, permit: Permit) -> None:
        """The call ended with no verdict on the engine (cancelled, a bad input): a probe's turn
        passes to the next call."""
        if permit.probe and self._is_current(permit):
            self._probing = False

    def trip(self, reason: str) -> None:
        """Opens the breaker from outside (the engine was unreachable at start)."""
        self.last_error = reason
        if self._state != BreakerState.OPEN:
            self._open(reason)

    def _is_current(self, permit: Permit) -> bool:
        return self._state == BreakerState.HALF_OPEN and permit.generation == self._generation

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._generation += 1
        self._failures.clear()
        self._probing = False
        self._move(BreakerState.OPEN, reason)

    def _move(self, new: BreakerState, reason: str) -> None:
        old, self._state = self._state, new
        if old != new and self._on_change is not None:
            self._on_change(Change(old, new, reason))
