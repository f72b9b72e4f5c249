"""Imports run one way (DESIGN.md): dashboards and alerts import the sidecar's names, never the
reverse; the runners never import the sidecar; only the generators import dashboards and alerts;
the dev stack stays out of the running sidecar. Checked on the source, statically."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.typecheck import package_dirs

SIDECAR_SIDE = ("jobsight.sidecar", "jobsight.sources", "jobsight.health", "jobsight.settings")


def modules() -> dict[str, Path]:
    """Every module of the package by its import name."""
    found: dict[str, Path] = {}
    for name, folder in package_dirs().items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            found[".".join([name, *parts])] = path
    return found


def imported_by(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for module, path in modules().items():
        if not module.startswith(importers):
            continue
        bad = sorted(n for n in imported_by(path) if n.startswith(forbidden))
        found += [f"{module} imports {name}" for name in bad]
    return found


@pytest.mark.parametrize(
    ("importers", "forbidden"),
    [
        (("jobsight.runners",), (*SIDECAR_SIDE, "jobsight.cli", "jobsight.devstack")),
        (
            (*SIDECAR_SIDE, "jobsight.cli.serve", "jobsight.cli.verdict"),
            ("jobsight.dashboards", "jobsight.alerts", "jobsight.generators", "jobsight.devstack"),
        ),
        (("jobsight.dashboards", "jobsight.alerts"), ("jobsight.generators", "jobsight.cli")),
    ],
)
def test_imports_run_one_way(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert offenders(importers, forbidden) == []


def test_the_check_sees_the_package() -> None:
    found = modules()
    assert {"jobsight.sidecar.poller", "jobsight.runners.pgqueue.worker"} <= set(found)
    generators = imported_by(found["jobsight.generators.generate"])
    assert any(name.startswith("jobsight.dashboards") for name in generators)
