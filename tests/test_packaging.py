"""One import root: the wheel holds `jobsight` and nothing else, a normal and an editable install
both import it from anywhere, and the folders' bare names are not importable."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.typecheck import ROOT, package_dirs

BARE_NAMES = ("exporter", "runners", "dashboards", "alerts", "migrations")


def shipped_modules() -> set[str]:
    """Every module and data file the mapped folders hold, at its path inside the wheel."""
    expected = set()
    for name, folder in package_dirs().items():
        prefix = name.replace(".", "/")
        for path in folder.rglob("*"):
            if "__pycache__" in path.parts or path.is_dir():
                continue
            relative = path.relative_to(folder)
            if path.suffix in (".py", ".sql") or path.name == "py.typed":
                expected.add(f"{prefix}/{relative.as_posix()}")
    return expected


def test_the_wheel_adds_one_top_level_package(built_wheel: Path) -> None:
    with zipfile.ZipFile(built_wheel) as wheel:
        names = wheel.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        assert {n.split("/")[0] for n in names} == {"jobsight", dist_info}
        assert wheel.read(f"{dist_info}/top_level.txt").decode().split() == ["jobsight"]
        assert (
            "jobsight = jobsight.cli:entry" in wheel.read(f"{dist_info}/entry_points.txt").decode()
        )
    missing = shipped_modules() - set(names)
    assert not missing, f"modules on disk but not in the wheel (add their package): {missing}"
    assert "jobsight/py.typed" in names


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


IMPORTS = """
import importlib.util, jobsight, jobsight.runners, jobsight.runners.pgqueue, jobsight.cli
import jobsight.sources.jobs, jobsight.alerts.rules, jobsight.dashboards.build
from jobsight.runners import migrator
print(jobsight.__file__)
print(jobsight.runners.__file__)
print(len(migrator.load_migrations()))
print([n for n in {bare} if importlib.util.find_spec(n) is not None])
"""


def test_a_normal_install_imports_from_anywhere(built_wheel: Path, tmp_path: Path) -> None:
    site, wheel = tmp_path / "site", str(built_wheel)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        check=True,
        timeout=300,
    )
    out = run_python(IMPORTS.format(bare=BARE_NAMES), tmp_path, {"PYTHONPATH": str(site)})
    root_file, runners_file, migrations, bare = out.splitlines()
    assert root_file == str(site / "jobsight" / "__init__.py")
    assert runners_file == str(site / "jobsight" / "runners" / "__init__.py")
    assert int(migrations) == len(list((ROOT / "migrations").glob("*.sql")))
    assert bare == "[]"
    version = subprocess.run(
        [sys.executable, "-m", "jobsight", "--version"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert version.stdout.strip() == f"jobsight {_version()}"


def test_the_editable_install_maps_the_folders(tmp_path: Path) -> None:
    """The development install (`make install`: pip install -e) reads the repository's folders."""
    out = run_python(IMPORTS.format(bare=BARE_NAMES), tmp_path)
    root_file, runners_file, _, bare = out.splitlines()
    if not root_file.startswith(str(ROOT)):
        pytest.fail(f"jobsight is not the editable install of this checkout: {root_file}")
    assert root_file == str(ROOT / "exporter" / "__init__.py")
    assert runners_file == str(ROOT / "runners" / "__init__.py")
    assert bare == "[]"


def test_the_command_reports_its_version() -> None:
    jobsight = Path(sys.executable).with_name("jobsight")
    for command in ([str(jobsight)], [sys.executable, "-m", "jobsight"]):
        done = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=60, check=True
        )
        assert done.stdout.strip() == f"jobsight {_version()}"


def _version() -> str:
    import jobsight

    return jobsight.__version__


def test_every_dependency_is_pinned_and_installed_at_its_pin() -> None:
    """constraints.txt pins every dependency of jobsight and its dev extra, past the published
    advisories of the pyproject floors, and this environment was installed through it."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement
    from packaging.version import Version

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[name.lower().replace("_", "-")] = pinned
    wanted = [Requirement(r) for r in requires("jobsight") or []]
    for requirement in wanted:
        extra = requirement.marker is not None and "extra" in str(requirement.marker)
        if extra and "dev" not in str(requirement.marker):
            continue  # the bench extra: pinned too, installed only by make bench
        if requirement.marker is not None and not requirement.marker.evaluate(
            {"extra": "dev"} if extra else {}
        ):
            continue
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in constraints.txt"
        assert pins[name] in requirement.specifier, (name, pins[name], str(requirement.specifier))
        installed = Version(version(requirement.name))
        assert installed == Version(pins[name]), (name, installed, pins[name])
    assert Version(pins["aiohttp"]) >= Version("3.12.14")  # the request-smuggling advisories
