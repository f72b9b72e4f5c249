"""Generated files are committed and fresh."""

from __future__ import annotations

from jobsight.generators.generate import generate
from tests.support.paths import ROOT


def test_generated_files_are_fresh():
    assert generate(ROOT, check=True) == [], "run `make generate` and commit the result"
