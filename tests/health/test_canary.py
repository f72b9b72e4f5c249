"""The canary analysis, pure (issue 18): canary against baseline on the same job names in the
same slices; a flaky job name that fails as much on both sides is not the canary's fault; no
evidence is never a pass; a failure is explained."""

from __future__ import annotations

import random

import pytest

from jobsight.health.canary import AUTO, FAIL, INCONCLUSIVE, PASS, analyse, choose_baseline
from jobsight.health.sequential import CanaryPolicy, Running, Slice, evidence, shown_worse
from jobsight.sources.pgqueue import VersionWorkers
from jobsight.sources.versions import Fingerprint, StuckRow, VersionSlice, fingerprint

POLICY = CanaryPolicy()


def stream(
    version: str, name: str, slices: int, per_slice: int, rate: float, seed: int, slow: float = 0.05
) -> list[VersionSlice]:
    rng = random.Random(f"{version}{name}{seed}")
    rows = []
    for k in range(slices):
        failed = sum(rng.random() < rate for _ in range(per_slice))
        late = sum(rng.random() < slow for _ in range(per_slice))
        rows.append(VersionSlice(name, version, k, per_slice, failed, per_slice, late))
    return rows


def test_a_worse_canary_fails_with_its_explanation() -> None:
    rows = (
        stream("v1", "send-email", 40, 90, 0.02, 1)
        + stream("v2", "send-email", 40, 10, 0.20, 1)
        + stream("v1", "import", 40, 50, 0.01, 2)
        + stream("v2", "import", 40, 5, 0.01, 2)
    )
    prints = [Fingerprint("v2", "TimeoutError: smtp after <n> s", 70),
              Fingerprint("v1", "TimeoutError: smtp after <n> s", 2),
              Fingerprint("v1", "KeyError: <value>", 60)]  # fmt: skip
    found = analyse(rows, "v2", "v1", POLICY, prints)
    assert found.answer == FAIL and found.overall is not None
    assert found.by_job[0].job_name == "send-email"  # the job name behind it comes first
    assert "send-email" in found.reason and "confidence" in found.reason
    assert found.rising_errors[0][0] == "TimeoutError: smtp after <n> s"
    assert found.next_action


def test_stuck_jobs_on_the_canary_fail_it_even_when_it_finished_nothing() -> None:
    """A canary whose every job hangs has no finished job: its stuck jobs are the evidence."""
    rows = stream("v1", "export", 20, 20, 0.01, 8)
    stuck = [StuckRow("v2", "export", 25), StuckRow("v1", "export", 1)]
    found = analyse(rows, "v2", "v1", POLICY, stuck=stuck)
    assert found.answer == FAIL, found.reason
    assert "stuck jobs: export 25 stuck of the canary's 25" in found.reason
    assert "export" in found.next_action
    # As many stuck on each side, in proportion to their work: not the canary's doing.
    canary = stream("v2", "export", 20, 20, 0.01, 9)
    even = [StuckRow("v2", "export", 2), StuckRow("v1", "export", 2)]
    assert analyse(rows + canary, "v2", "v1", POLICY, stuck=even).answer == PASS


def test_a_crash_looping_canary_fails_and_a_steady_one_does_not() -> None:
    rows = stream("v1", "a", 20, 50, 0.01, 10) + stream("v2", "a", 20, 10, 0.01, 11)
    looping = [VersionWorkers("v1", 10, 0), VersionWorkers("v2", 14, 12)]
    found = analyse(rows, "v2", "v1", POLICY, workers=looping)
    assert found.answer == FAIL and found.crashes is not None
    assert "worker crashes: 12 of 14 canary workers against 0 of 10" in found.reason
    assert "crashed canary workers" in found.next_action
    steady = [VersionWorkers("v1", 10, 1), VersionWorkers("v2", 2, 0)]
    assert analyse(rows, "v2", "v1", POLICY, workers=steady).answer == PASS
    # One crash of two canary workers is not evidence enough to roll back on its own.
    one = [VersionWorkers("v1", 10, 0), VersionWorkers("v2", 2, 1)]
    assert analyse(rows, "v2", "v1", POLICY, workers=one).answer == PASS


def test_a_flaky_job_name_fails_no_canary_that_is_as_flaky() -> None:
    """The fixed thresholds fail every canary that runs a job name failing 6% of the time."""
    rows = stream("v1", "flaky", 60, 90, 0.06, 3) + stream("v2", "flaky", 60, 10, 0.06, 4)
    found = analyse(rows, "v2", "v1", POLICY)
    assert found.answer == PASS, found.reason


def test_no_evidence_is_never_a_pass() -> None:
    rows = stream("v1", "a", 10, 90, 0.02, 5) + stream("v2", "a", 2, 10, 0.0, 6)
    assert analyse(rows, "v2", "v1", POLICY).answer == INCONCLUSIVE  # 20 < 50 canary jobs
    assert analyse(rows, "typo", "v1", POLICY).answer == INCONCLUSIVE
    assert analyse(rows, "v2", "never-ran", POLICY).answer == INCONCLUSIVE
    only_canary = stream("v2", "a", 20, 10, 0.0, 7)
    assert analyse(only_canary, "v2", AUTO, POLICY).answer == INCONCLUSIVE
    # a canary that runs only job names its baseline does not: nothing to compare
    elsewhere = stream("v1", "a", 20, 90, 0.02, 8) + stream("v2", "b", 20, 10, 0.0, 9)
    assert analyse(elsewhere, "v2", "v1", POLICY).answer == INCONCLUSIVE


def test_auto_baseline_is_the_busiest_other_version() -> None:
    rows = stream("v1", "a", 5, 90, 0.0, 1) + stream("v0", "a", 5, 20, 0.0, 1)
    rows += stream("v2", "a", 5, 10, 0.0, 1)
    assert choose_baseline(rows, "v2", AUTO) == "v1"
    assert choose_baseline(rows, "v1", AUTO) == "v0"


@pytest.mark.parametrize("rate", [0.005, 0.02, 0.06])
def test_equal_streams_are_rarely_failed_at_any_look(rate: float) -> None:
    """Ville's bound, checked: 300 rollouts of 60 looks each, every look judged."""
    rng = random.Random(rate)
    failed = 0
    for _ in range(300):
        running = Running(POLICY.failure_margin)
        for _ in range(60):
            canary = sum(rng.random() < rate for _ in range(50))
            base = sum(rng.random() < rate for _ in range(450))
            if shown_worse(running.add(Slice(50, canary, 450, base)), POLICY, "failures"):
                failed += 1
                break
    assert failed / 300 <= 0.02


def test_a_better_canary_is_never_worse() -> None:
    slices = [Slice(50, 0, 450, 40) for _ in range(50)]
    found = evidence(slices, 1.0)
    assert found.log_value < 0 and found.p_value == 1.0


def test_error_texts_are_fingerprinted() -> None:
    a = fingerprint("TimeoutError: job 7f3e2c1a-0000-4000-8000-00000000beef after 30 s 'db-1'")
    b = fingerprint("TimeoutError: job 9a1c2c1a-1111-4000-8000-00000000cafe after 31 s 'db-2'")
    assert a == b == "TimeoutError: job <id> after <n> s <value>"
    assert fingerprint("x" * 500) == "x" * 200
