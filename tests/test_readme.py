"""The Python samples of the README and docs/runners.md import and run as written, against real
PostgreSQL and Temporal.

The blocks run in order in one namespace (a later sample uses the registry of an earlier one),
with the names the README says are the reader's own: DATABASE_URL, TENANT_ID, TEMPORAL_ADDRESS.
"""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jobsight.runners import JobRunner

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "README.md", ROOT / "docs" / "runners.md")  # read in this order


def python_samples() -> list[str]:
    return [
        sample
        for page in PAGES
        for sample in re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.M | re.S)
    ]


async def run_sample(source: str, namespace: dict[str, Any]) -> None:
    code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # the README's own samples, run as a reader would
    if result is not None:
        await result


def test_the_readme_has_samples() -> None:
    samples = python_samples()
    assert len(samples) >= 3
    assert all("from jobsight" in sample for sample in samples)


async def test_every_sample_runs_as_written(
    migrated_db: str, temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = uuid.uuid4()
    monkeypatch.setenv("DATABASE_URL", migrated_db)
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_address)
    namespace: dict[str, Any] = {
        "DATABASE_URL": migrated_db,
        "TENANT_ID": tenant,
        "TEMPORAL_ADDRESS": temporal_address,
    }
    runners: list[JobRunner] = []
    try:
        for sample in python_samples():
            await run_sample(sample, namespace)
            runner = namespace.get("runner")
            if runner is not None and all(runner is not r for r in runners):
                runners.append(runner)
    finally:
        for runner in runners:
            await runner.stop()
    assert len(runners) == len([s for s in python_samples() if "runner = " in s])
    conn = await asyncpg.connect(migrated_db)
    try:
        scheduled = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE tenant = $1 AND type = 'generate-invoice'", tenant
        )
    finally:
        await conn.close()
    assert scheduled >= 4  # now, at a time, two in one batch (and the schedule's runs, if due)
