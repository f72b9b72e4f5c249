"""The circuit breaker's states on a clock the test moves: opening on failures within the
window, failing fast while open, one probe at a time once the cool-down is over, and closing or
opening again on the probe's outcome."""

from __future__ import annotations

import pytest

from jobsight.runners import ValidationError
from jobsight.runners.breaker import BreakerSettings, BreakerState, Change, CircuitBreaker
from jobsight.runners.factory import RunnerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker() -> tuple[CircuitBreaker, Clock, list[Change]]:
    clock, changes = Clock(), []
    made = CircuitBreaker(BreakerSettings(failures=3, window=10, cooldown=5), clock,
                          changes.append)  # fmt: skip
    return made, clock, changes


def fail(b: CircuitBreaker, error: str = "down") -> None:
    permit = b.acquire()
    assert permit is not None
    b.failure(permit, error)


def test_opens_on_failures_within_the_window_only() -> None:
    b, clock, changes = breaker()
    fail(b)
    clock.now += 11  # the first failure leaves the window
    fail(b)
    fail(b)
    assert b.state == BreakerState.CLOSED and changes == []
    fail(b, "tcp connect error")
    assert b.state == BreakerState.OPEN
    assert changes[-1].reason == "3 failures within 10 s (last: tcp connect error)"
    assert b.acquire() is None and b.retry_in() == 5


def test_successes_do_not_close_what_failures_opened_until_a_probe() -> None:
    b, clock, changes = breaker()
    for _ in range(3):
        fail(b)
    clock.now += 4.9
    assert b.acquire() is None
    clock.now += 0.1
    probe = b.acquire()
    assert probe is not None and probe.probe and b.state == BreakerState.HALF_OPEN
    assert b.acquire() is None  # one probe at a time
    b.success(probe)
    assert b.state == BreakerState.CLOSED
    assert [c.new for c in changes] == ["open", "half_open", "closed"]
    fail(b)
    fail(b)
    assert b.state == BreakerState.CLOSED  # the count started again from zero


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    b, clock, _ = breaker()
    for _ in range(3):
        fail(b)
    clock.now += 5
    probe = b.acquire()
    assert probe is not None
    b.failure(probe, "still down")
    assert b.state == BreakerState.OPEN and b.retry_in() == 5 and b.last_error == "still down"


def test_a_released_probe_passes_its_turn_and_late_outcomes_change_nothing() -> None:
    b, clock, _ = breaker()
    slow = b.acquire()  # a call of the closed state, still in flight when it opens
    assert slow is not None
    for _ in range(3):
        fail(b)
    clock.now += 5
    probe = b.acquire()
    assert probe is not None
    b.release(probe)  # cancelled: no verdict on the engine
    assert b.state == BreakerState.HALF_OPEN
    second = b.acquire()
    assert second is not None and second.probe
    b.failure(slow, "late")  # from before the opening: not the probe's outcome
    b.success(slow)
    assert b.state == BreakerState.HALF_OPEN
    b.success(second)
    assert b.state == BreakerState.CLOSED


def test_trip_opens_it_from_outside() -> None:
    b, _, changes = breaker()
    b.trip("unreachable at start")
    assert b.state == BreakerState.OPEN and changes[0].reason == "unreachable at start"


def test_settings_from_the_environment() -> None:
    env = {"DATABASE_URL": "postgresql://u@h/db", "JOB_RUNNER_BREAKER_FAILURES": "2",
           "JOB_RUNNER_BREAKER_WINDOW": "1m", "JOB_RUNNER_BREAKER_COOLDOWN": "500ms"}  # fmt: skip
    assert RunnerSettings.from_env(env).breaker == BreakerSettings(2, 60.0, 0.5)
    assert RunnerSettings.from_env({"DATABASE_URL": "x"}).breaker == BreakerSettings()
    for name, value in (("FAILURES", "0"), ("FAILURES", "many"), ("WINDOW", "soon")):
        with pytest.raises(ValidationError, match=f"JOB_RUNNER_BREAKER_{name}"):
            RunnerSettings.from_env({"DATABASE_URL": "x", f"JOB_RUNNER_BREAKER_{name}": value})
