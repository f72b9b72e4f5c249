"""The generated dashboards and alert rules: promtool checks and unit tests, runbooks for every
alert, the PrometheusRule equal to the rules file, and the dashboards type-checked against
Grafana's published schema types (npm @grafana/schema with typescript)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT
from tests.support.tools import require_tool

GENERATED = ROOT / "alerts" / "generated"
DASHBOARDS = ROOT / "dashboards" / "generated"
SCHEMA = ROOT / "tests" / "schema"
# tsc errors that remain, each for a reason outside the dashboards (README: "Dashboards").
JUSTIFIED = {
    # MappingType is a TypeScript string enum; JSON can only hold its value "value", which is
    # exactly what Grafana stores. TypeScript does not accept a literal for a string enum.
    "TS2322: Type '\"value\"' is not assignable to type 'MappingType'.",
}


def rules() -> list[dict]:
    groups = yaml.safe_load((GENERATED / "jobsight-rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_and_unit_tests_the_rules():
    require_tool(shutil.which("promtool") is not None, "promtool (Debian package prometheus)")
    check = subprocess.run(
        ["promtool", "check", "rules", "jobsight-rules.yaml"],
        cwd=GENERATED,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", check.stdout)
    assert found and int(found.group(1)) >= len(rules())
    unit = subprocess.run(
        ["promtool", "test", "rules", "jobsight-rules.test.yaml"],
        cwd=GENERATED,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_every_alert_fires_and_stays_quiet_in_the_unit_tests():
    tests = yaml.safe_load((GENERATED / "jobsight-rules.test.yaml").read_text())["tests"]
    firing, quiet = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert firing == names and quiet == names


def test_every_alert_has_severity_annotations_and_a_runbook():
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        anchor = notes["runbook_url"].rsplit("#", 1)[1]
        assert anchor == rule["alert"].lower()
        section = runbooks.split(f"## {rule['alert']}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("What it means.", "How to confirm.", "What to do."):
            assert part in section, (rule["alert"], part)


def test_trigger_alerts_cover_every_trigger_and_level():
    from jobsight.health.specs import TRIGGERS

    names = {rule["alert"] for rule in rules()}
    for spec in TRIGGERS:
        camel = "".join(p.capitalize() for p in spec.name.split("_"))
        assert f"Jobsight{camel}Degraded" in names
        assert (f"Jobsight{camel}Rollback" in names) == (spec.rollback is not None)
    for meta in (
        "JobsightSidecarDown",
        "JobsightSidecarAbsent",
        "JobsightSourceDown",
        "JobsightNoLeader",
        "JobsightPollsStale",
        "JobsightErrorBudgetBurnFast",
        "JobsightErrorBudgetBurnSlow",
    ):
        assert meta in names


def test_prometheusrule_holds_the_same_groups():
    manifest = yaml.safe_load((GENERATED / "prometheusrule.yaml").read_text())
    plain = yaml.safe_load((GENERATED / "jobsight-rules.yaml").read_text())
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["spec"]["groups"] == plain["groups"]


def test_dashboards_have_the_variables_and_links():
    boards = {p.stem: json.loads(p.read_text()) for p in DASHBOARDS.glob("*.json")}
    assert set(boards) == {
        "jobsight-overview",
        "jobsight-queues",
        "jobsight-temporal",
        "jobsight-sidecar",
    }
    for name, board in boards.items():
        variables = {v["name"] for v in board["templating"]["list"]}
        assert {"datasource", "job", "namespace", "temporal_ui"} <= variables, name
        assert board["schemaVersion"] >= 39 and board["uid"] == name
    assert {"job_name", "queue", "runner"} <= {
        v["name"] for v in boards["jobsight-overview"]["templating"]["list"]
    }
    links = [
        link["url"]
        for p in boards["jobsight-temporal"]["panels"]
        for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", [])
    ]
    assert any(url.startswith("${temporal_ui}/namespaces/") for url in links)


def test_dashboards_type_check_against_grafana_schema():
    require_tool(shutil.which("npm") is not None, "npm (Node.js)")
    if not (SCHEMA / "node_modules" / "@grafana" / "schema").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=SCHEMA,
            check=True,
            timeout=300,
        )
    parts = ["import type { Dashboard } from '@grafana/schema';", ""]
    for index, path in enumerate(sorted(DASHBOARDS.glob("*.json"))):
        # `satisfies` keeps the literals' own types, as Grafana reads them from JSON.
        parts.append(
            f"export const dashboard{index} = {path.read_text().strip()} satisfies Dashboard;"
        )
    (SCHEMA / "check.ts").write_text("\n".join(parts) + "\n")
    result = subprocess.run(
        [str(SCHEMA / "node_modules" / ".bin" / "tsc"), "-p", str(SCHEMA)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = {
        re.sub(r"^.*check\.ts\(\d+,\d+\): error ", "", line)
        for line in result.stdout.splitlines()
        if "error TS" in line
    }
    assert errors == JUSTIFIED, result.stdout[-3000:]


def test_the_docs_say_why_not_grafanalib():
    readme = (ROOT / "docs" / "monitoring.md").read_text()
    assert "grafanalib" in readme and "grafana-foundation-sdk" in readme


@pytest.mark.parametrize("path", sorted(DASHBOARDS.glob("*.json")), ids=lambda p: p.stem)
def test_every_panel_query_names_a_known_metric(path: Path):
    from jobsight.generators.metrics_doc import all_metrics

    known = {spec.name for spec in all_metrics()} | {"up"}
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel.get("targets", []):
            found = set(re.findall(r"\b(jobsight_[a-z0-9_]+)\{", target["expr"]))
            names = {n if n in known else re.sub(r"_(bucket|count|sum)$", "", n) for n in found}
            assert names and names <= known, (panel["title"], names - known)
