"""`make lint`'s type check: mypy --strict over the whole `jobsight` package.

The repository's folders are not import names (pyproject.toml maps them onto `jobsight`), and
static checkers cannot follow setuptools' editable-install finder; so this builds a tree of
symbolic links shaped like the installed package (build/typecheck/jobsight/...) and checks that.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.paths import ROOT

TREE = ROOT / "build" / "typecheck"


def package_dirs() -> dict[str, Path]:
    """Import name -> folder, as pyproject.toml declares them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: ROOT / folder for name, folder in config["package-dir"].items()}


def build_tree() -> Path:
    shutil.rmtree(TREE, ignore_errors=True)
    mapping = package_dirs()
    root = TREE / "jobsight"
    root.mkdir(parents=True)
    for entry in mapping["jobsight"].iterdir():
        if entry.name != "__pycache__":
            (root / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        if name != "jobsight":
            (TREE / name.replace(".", "/")).symlink_to(folder)
    return TREE


def main() -> int:
    tree = build_tree()
    config = str(ROOT / "pyproject.toml")
    mypy = [sys.executable, "-m", "mypy", "--config-file", config, "-p", "jobsight"]
    checked = subprocess.run(mypy, cwd=tree, check=False)
    radon = [sys.executable, "-m", "radon", "cc", "--min", "D", "--no-assert", "-s", "."]
    too_complex = subprocess.run(radon, cwd=tree, capture_output=True, text=True, check=False)
    if too_complex.stdout.strip():
        print("functions above complexity C:\n" + too_complex.stdout, file=sys.stderr)
    return checked.returncode or (1 if too_complex.stdout.strip() else 0)


if __name__ == "__main__":
    sys.exit(main())
