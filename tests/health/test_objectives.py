"""Objectives per job name (issue 20): one declaration, parsed and refused with its reason,
exported as the metrics the generated burn-rate rules and the dashboards read."""

from __future__ import annotations

import pytest

from jobsight.health.objectives import Objective, parse
from jobsight.metric_spec import DURATION_BUCKETS
from jobsight.settings import SettingError, load_settings
from jobsight.sidecar.collector import render_objectives
from tests.support.scrape import by_sample


def test_the_issues_own_example_parses() -> None:
    found = parse("generate-invoice: 99.5% succeed, 95% start within 30s; import: 99% succeed",
                  DURATION_BUCKETS)  # fmt: skip
    assert found == (
        Objective("generate-invoice", 0.995, 0.95, 30.0),
        Objective("import", 0.99, None, None),
    )
    as_yaml = parse({"generate-invoice": "95% start within 1m"}, DURATION_BUCKETS)
    assert as_yaml == (Objective("generate-invoice", None, 0.95, 60.0),)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a: 95% start within 20s", "not a bound of the wait histogram"),
        ("a: 100% succeed", "between 0% and 100%"),
        ("a: 99% succeed; a: 98% succeed", "declared twice"),
        ("a: 99% succeeds", "neither"),
        ("99% succeed", "not 'job name: objectives'"),
        (": 99% succeed", "needs a job name"),
    ],
)
def test_a_bad_declaration_names_its_fault(text: str, says: str) -> None:
    with pytest.raises(SettingError, match="JOBSIGHT_OBJECTIVES") as refused:
        load_settings({"DATABASE_URL": "postgresql://u@h/db", "JOBSIGHT_OBJECTIVES": text})
    assert says in str(refused.value)


def test_objectives_are_exported_as_the_rules_read_them() -> None:
    metrics = by_sample(render_objectives(parse(
        "generate-invoice: 99.5% succeed, 95% start within 30s; import: 99% succeed",
        DURATION_BUCKETS)))  # fmt: skip
    assert metrics["jobsight_objective"] == {
        (("job_name", "generate-invoice"), ("objective", "succeed")): 0.995,
        (("job_name", "generate-invoice"), ("objective", "start")): 0.95,
        (("job_name", "import"), ("objective", "succeed")): 0.99,
    }
    assert metrics["jobsight_objective_start_within_seconds"] == {
        (("job_name", "generate-invoice"),): 30.0
    }
    # The le label as the wait histogram writes its bucket bound, so the rules' join matches.
    assert metrics["jobsight_objective_start_bucket"] == {
        (("job_name", "generate-invoice"), ("le", "30.0")): 1
    }
