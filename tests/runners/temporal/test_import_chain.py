"""The workflow sandbox re-imports the workflow's module and every package above it for each
workflow run: that chain must stay a handful of light modules (it once pulled the runner, the
pgqueue engine and asyncpg, and cost the engine half its throughput)."""

from __future__ import annotations

import json
import subprocess
import sys

LIGHT = {
    "jobsight",
    "jobsight.runners",
    "jobsight.runners.lazy",
    "jobsight.runners.temporal",
    "jobsight.runners.temporal.types",
    "jobsight.runners.temporal.workflow",
}
PROBE = """
import json, sys
import temporalio.workflow
before = set(sys.modules)
import jobsight.runners.temporal.workflow
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_the_workflow_module_imports_only_light_modules() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert loaded == LIGHT, sorted(loaded - LIGHT)


def test_the_packages_still_export_their_names() -> None:
    from jobsight.runners import HandlerRegistry, JobStatus, migrator
    from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings

    assert HandlerRegistry.__module__ == "jobsight.runners.registry"
    assert JobStatus.__module__ == "jobsight.runners.status"
    assert migrator.__name__ == "jobsight.runners.migrator"  # a submodule, imported as one
    assert TemporalJobRunner.__module__ == "jobsight.runners.temporal.runner"
    assert TemporalSettings.__module__ == "jobsight.runners.temporal.settings"
