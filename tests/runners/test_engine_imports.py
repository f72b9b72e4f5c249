"""Choosing one engine imports nothing of the other (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BUILD = """
import sys
from jobsight.runners import HandlerRegistry
from jobsight.runners.factory import RunnerSettings, build_runner
settings = RunnerSettings(database_url="postgresql://u@127.0.0.1:1/x", runner_type={engine!r})
runner = build_runner({engine!r}, settings, HandlerRegistry())
assert runner.runner_type == {engine!r}
print(" ".join(sorted(m for m in sys.modules if m == {other!r} or m.startswith({other!r} + "."))))
"""


@pytest.mark.parametrize(
    ("engine", "other"),
    [("temporal", "jobsight.runners.pgqueue"), ("pgqueue", "jobsight.runners.temporal")],
)
def test_building_one_engine_imports_nothing_of_the_other(engine: str, other: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUILD.format(engine=engine, other=other)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_pgqueue_imports_no_temporal_sdk() -> None:
    code = BUILD.format(engine="pgqueue", other="temporalio")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
