"""The states a trigger or a verdict can be in: one vocabulary for the triggers, the verdict, the
metrics, the gates, the pages and the CLI's exit codes."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    OK = "ok"
    INCONCLUSIVE = "inconclusive"  # a canary without the minimum sample yet: never a pass
    DEGRADED = "degraded"
    ROLLBACK = "rollback"
    UNKNOWN = "unknown"  # the data behind it cannot be vouched for: never a pass
    DISABLED = "disabled"  # none of its sources is enabled: it does not count

    @property
    def severity(self) -> int:
        """The verdict is the worst state in this order: a known rollback outranks missing data."""
        return SEVERITY[self]


SEVERITY = {
    State.DISABLED: -1,
    State.OK: 0,
    State.INCONCLUSIVE: 1,
    State.DEGRADED: 2,
    State.UNKNOWN: 3,
    State.ROLLBACK: 4,
}
# What a verdict can be (inconclusive only for a worker version's scope).
VERDICT_STATES = (State.OK, State.INCONCLUSIVE, State.DEGRADED, State.ROLLBACK, State.UNKNOWN)
