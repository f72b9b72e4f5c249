"""A sequential comparison of a canary with its baseline that stays valid however often a
deployment tool looks (pure math, no I/O).

Argo Rollouts and Flagger ask for a judgement every 30 to 60 seconds for a whole rollout; a
fixed-sample test repeated at every look fails good releases far more often than its level. This
test is a *test martingale*: under the null hypothesis its value is a nonnegative supermartingale
starting at 1, so by Ville's inequality the chance that it *ever* reaches 1/alpha, at any number
of looks, is at most alpha (1 over its running maximum is an always-valid p-value).

The data come in *slices*: fixed stretches of time (or, in the benchmark, of canary jobs), each
with the canary's and the baseline's jobs and how many of them failed (or ran slower than a
threshold fixed before the slice). Within a slice, given how many failures there were in all,
the canary's share follows Fisher's noncentral hypergeometric law with the odds ratio psi of the
canary's rate to the baseline's, whatever the common rate is, and whatever it does from one slice
to the next (a busy hour, a flaky dependency): the comparison needs no estimate of the baseline's
rate and no model of its drift. The statistic mixes, over a fixed grid of odds ratios above the
tolerated one psi0, the product over slices of each slice's likelihood ratio (psi against
psi0). A canary no worse than psi0 times its baseline keeps every product a supermartingale, so it
is failed with chance at most alpha; a worse one drives the matching product up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# The alternatives mixed over, as multiples of the tolerated odds ratio: an equal-weight grid
# from a quarter worse to ten times worse. Fixed in advance (never fitted to the data).
PSI_GRID = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
# For rare events (stuck jobs, crashed workers), where a release that breaks something breaks it
# badly and the counts are small: alternatives from twice to a hundred times worse.
RARE_GRID = (2.0, 5.0, 10.0, 30.0, 100.0)


@dataclass(frozen=True)
class Slice:
    """One stretch of time: jobs finished by each side and how many of them were hits (failed,
    or slower than the threshold set before the stretch began)."""

    canary_jobs: int
    canary_hits: int
    baseline_jobs: int
    baseline_hits: int


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _log_sum_exp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def log_conditional(s: Slice, psi: float) -> float:
    """log P(canary hits | the slice's total hits, odds ratio psi): Fisher's noncentral
    hypergeometric law. 0 when the slice cannot tell (no hits, or one side without jobs)."""
    total = s.canary_hits + s.baseline_hits
    low, high = max(0, total - s.baseline_jobs), min(s.canary_jobs, total)
    if high <= low:
        return 0.0

    def weight(k: int) -> float:
        return (
            _log_comb(s.canary_jobs, k) + _log_comb(s.baseline_jobs, total - k) + k * math.log(psi)
        )

    return weight(s.canary_hits) - _log_sum_exp([weight(k) for k in range(low, high + 1)])


@dataclass(frozen=True)
class Evidence:
    """Where the comparison stands: the log of the mixture statistic, and the alternative that
    carries most of it (the odds ratio the data favour, from the grid)."""

    log_value: float
    likeliest_psi: float

    @property
    def p_value(self) -> float:
        """Always valid (at this look, having looked at every earlier one)."""
        return min(1.0, math.exp(-max(0.0, self.log_value)))

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value


class Running:
    """The statistic kept up to date slice by slice (each slice added once)."""

    def __init__(self, psi0: float, grid: Sequence[float] = PSI_GRID) -> None:
        self.psi0 = psi0
        self.grid = tuple(grid)
        self.sums = [0.0] * len(self.grid)

    def add(self, s: Slice) -> Evidence:
        null = log_conditional(s, self.psi0)
        for i, multiple in enumerate(self.grid):
            self.sums[i] += log_conditional(s, self.psi0 * multiple) - null
        return self.current()

    def current(self) -> Evidence:
        value = _log_sum_exp(self.sums) - math.log(len(self.grid))
        best = max(range(len(self.grid)), key=lambda i: self.sums[i])
        return Evidence(value, self.psi0 * self.grid[best])


def evidence(slices: Iterable[Slice], psi0: float, grid: Sequence[float] = PSI_GRID) -> Evidence:
    """The mixture test martingale over the slices, against odds ratio psi0 (> 0). Pure."""
    running = Running(psi0, grid)
    for s in slices:
        running.add(s)
    return running.current()


@dataclass(frozen=True)
class CanaryPolicy:
    """How a canary is compared with its baseline."""

    alpha: float = 0.01  # chance of ever failing a canary no worse than its margins allow
    failure_margin: float = 1.0  # psi0 for failures: no worse odds tolerated beyond chance
    slow_margin: float = 1.2  # psi0 for runs above the baseline's p95
    min_jobs: int = 50  # canary jobs finished before it can pass (below: inconclusive)


# How alpha is shared by the comparisons that can fail a canary (a union bound, so the chance
# that any of them ever fails a good canary stays at most alpha): nearly all of it to the two
# that every finished job informs, a little to the rare events, whose evidence, when they do
# happen on one side only, is overwhelming (dozens of stuck jobs, a crash-looping worker).
ALPHA_SHARES = {"failures": 0.45, "run_time": 0.45, "stuck": 0.05, "crashes": 0.05}


def shown_worse(found: Evidence, policy: CanaryPolicy, comparison: str) -> bool:
    """Whether this comparison fails the canary: its share of alpha reached, at any look."""
    return found.log_value >= -math.log(policy.alpha * ALPHA_SHARES[comparison])
