"""`make lint`'s type and complexity checks over the whole `jobsight` package.

The repository's folders are not import names (pyproject.toml maps them onto `jobsight`), and
static checkers cannot follow setuptools' editable-install finder; so `--tree` builds a tree of
symbolic links shaped like the installed package (build/typecheck/jobsight/...), which mypy reads
(pyproject.toml: mypy_path, packages) and radon measures (`--complexity`: no function above grade
C). Without an option it does all three.
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


def type_check() -> int:
    return subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, check=False).returncode


def complexity() -> int:
    radon = [sys.executable, "-m", "radon", "cc", "--min", "D", "--no-assert", "-s", "."]
    found = subprocess.run(radon, cwd=TREE, capture_output=True, text=True, check=False).stdout
    if found.strip():
        print("functions above complexity C:\n" + found, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if "--tree" in argv:
        build_tree()
        return 0
    if "--complexity" in argv:
        return complexity()
    build_tree()
    return type_check() or complexity()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
