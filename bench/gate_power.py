"""How good the canary gate is, on simulated job streams (issue 18): jobsight's sequential
comparison of a canary with its baseline, against today's fixed-threshold gate, on the same
streams.

A rollout: the baseline version runs BASELINE_PER_CANARY jobs for each canary job (a 10% canary);
its p95 run time before the rollout (HISTORY runs) is the line a "slow" run crosses. A deployment
tool looks every LOOK canary jobs, up to MAX_CANARY; the first look that fails rolls the release
back. Failures are Bernoulli; run times are log-normal (sigma 0.5). Every scenario runs the same
number of rollouts with a fixed seed. Reported per scenario: the share of rollouts rolled back (in
all, and within 200, 300 and 1,000 canary jobs), and the canary jobs at the median and the 95th
and 99th percentile decision.

Targets: equal canary and baseline rolled back in <= 1% (baseline failure rates 0.5%, 2%, 6%);
2% -> 4% rolled back in >= 95% with the median decision within 1,000 canary jobs; 0.5% -> 5%
within 200 canary jobs in >= 99%; p95 run time 1.5x within 300 jobs in >= 95%; an idle canary
never passes.

Usage: python -m bench.gate_power [--rollouts 1000]
Writes bench/results/gate_power.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from jobsight.health.sequential import ALPHA_SHARES, CanaryPolicy, Running, Slice, shown_worse

RESULTS = Path(__file__).resolve().parent / "results" / "gate_power.json"
HISTORY = 5_000
BASELINE_PER_CANARY = 9
LOOK = 50
MAX_CANARY = 5_000
SIGMA = 0.5
FIXED_ROLLBACK_RATE = 0.05  # today's gate: error rate above 5% over >= 20 jobs
FIXED_MIN_SAMPLE = 20
FIXED_P95_ROLLBACK_S = 120.0
WITHIN = (200, 300, 1000)  # canary jobs by which a rollback is counted too
# (FIXED_P95_ROLLBACK_S: the fixed gate's p95 line, the default latency rollback threshold)


@dataclass(frozen=True)
class Scenario:
    name: str
    baseline_fail: float
    canary_fail: float
    slowdown: float = 1.0  # canary run times are this many times the baseline's
    idle: bool = False


SCENARIOS = (
    Scenario("equal at 0.5%", 0.005, 0.005),
    Scenario("equal at 2%", 0.02, 0.02),
    Scenario("equal at 6%", 0.06, 0.06),
    Scenario("2% -> 4%", 0.02, 0.04),
    Scenario("0.5% -> 5%", 0.005, 0.05),
    Scenario("p95 run time x1.5", 0.01, 0.01, slowdown=1.5),
    Scenario("idle canary", 0.02, 0.02, idle=True),
)


def exceeds(line: float, mu: float) -> float:
    """The chance that a log-normal(mu, SIGMA) run is longer than `line`."""
    return 0.5 * math.erfc((math.log(line) - mu) / (SIGMA * math.sqrt(2)))


def hits(rng: random.Random, jobs: int, rate: float) -> int:
    return sum(rng.random() < rate for _ in range(jobs))


def rollout(s: Scenario, rng: random.Random, policy: CanaryPolicy) -> dict[str, int | None]:
    """Canary jobs at the first failing look, for jobsight and for the fixed gate (None: never).
    jobsight's slices are the looks: each holds the canary's LOOK jobs and the baseline's
    jobs of the same stretch; "slow" is a run above the baseline's p95 before the rollout."""
    mu = math.log(30.0)  # 30 s median run time
    history = sorted(rng.lognormvariate(mu, SIGMA) for _ in range(HISTORY))
    p95 = history[int(0.95 * HISTORY)]
    base_slow = exceeds(p95, mu)  # the estimated p95's true exceedance, the same on both sides
    canary_mu = mu + math.log(s.slowdown)
    failures, slow_runs = Running(policy.failure_margin), Running(policy.slow_margin)
    n = failed = 0
    durations: list[float] = []
    decided: dict[str, int | None] = {"jobsight": None, "fixed": None}
    if s.idle:
        return decided  # no canary job, no look can fail it (nor pass it: see the unit tests)
    base_jobs = LOOK * BASELINE_PER_CANARY
    while n < MAX_CANARY:
        runs = [rng.lognormvariate(canary_mu, SIGMA) for _ in range(LOOK)]
        durations += runs
        c_failed = hits(rng, LOOK, s.canary_fail)
        n += LOOK
        failed += c_failed
        by_failures = failures.add(
            Slice(LOOK, c_failed, base_jobs, hits(rng, base_jobs, s.baseline_fail))
        )
        by_time = slow_runs.add(
            Slice(LOOK, sum(r > p95 for r in runs), base_jobs, hits(rng, base_jobs, base_slow))
        )
        if decided["jobsight"] is None and (
            shown_worse(by_failures, policy, "failures") or shown_worse(by_time, policy, "run_time")
        ):
            decided["jobsight"] = n
        if decided["fixed"] is None and n >= FIXED_MIN_SAMPLE:
            p95_canary = sorted(durations)[int(0.95 * len(durations))]
            if failed / n > FIXED_ROLLBACK_RATE or p95_canary > FIXED_P95_ROLLBACK_S:
                decided["fixed"] = n
        if decided["jobsight"] is not None and decided["fixed"] is not None:
            break
    return decided


def summarise(decisions: list[int | None]) -> dict[str, float | None]:
    made = sorted(d for d in decisions if d is not None)
    share = len(made) / len(decisions)

    def at(q: float) -> float | None:
        if len(made) < q * len(decisions):
            return None  # fewer rollouts than that were ever rolled back
        return float(made[max(0, math.ceil(q * len(decisions)) - 1)])

    return {
        "rolled_back": round(share, 4),
        **{f"within_{n}": round(sum(d <= n for d in made) / len(decisions), 4) for n in WITHIN},
        "median_jobs": at(0.5),
        "p95_jobs": at(0.95),
        "p99_jobs": at(0.99),
        "mean_jobs_when_rolled_back": round(statistics.mean(made), 1) if made else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    policy = CanaryPolicy()
    rows = []
    for scenario in SCENARIOS:
        rng = random.Random(f"{args.seed}:{scenario.name}")
        runs = [rollout(scenario, rng, policy) for _ in range(args.rollouts)]
        row = {
            "scenario": scenario.name,
            "jobsight": summarise([r["jobsight"] for r in runs]),
            "fixed_thresholds": summarise([r["fixed"] for r in runs]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "bench": "gate_power",
        "rollouts": args.rollouts,
        "seed": args.seed,
        "policy": {**policy.__dict__, "alpha_shares": ALPHA_SHARES},
        "stream": {
            "history": HISTORY,
            "baseline_per_canary": BASELINE_PER_CANARY,
            "look": LOOK,
            "max_canary": MAX_CANARY,
            "sigma": SIGMA,
        },
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
