"""Tools the tests need: skipped locally when missing, a failure in CI (where .ci/run must install
every one)."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(available: bool, what: str) -> None:
    """Skips locally when a tool is missing; fails in CI, where every tool must be installed."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing in CI: .ci/run must install it")
    pytest.skip(f"{what} is missing")
