"""Real pg-boss for the tests: each release's npm install (once), and its scenario script run by
Node against a database."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest

from tests.support.paths import ROOT
from tests.support.tools import require_tool

HERE = ROOT / "tests" / "pgboss"
NPM_TIMEOUT_S = 300


def node_for(version: str) -> str | None:
    if version == "v12":
        node = HERE / "v12" / "node_modules" / ".bin" / "node"
        return str(node) if node.exists() else None
    return shutil.which("node")


@pytest.fixture(scope="session")
def pgboss_installs() -> dict[str, str]:
    """npm ci in each version folder (once per session when node_modules is missing)."""
    require_tool(shutil.which("npm") is not None, "npm (Node.js)")
    nodes = {}
    for version in ("v10", "v12"):
        folder = HERE / version
        if not (folder / "node_modules" / "pg-boss").exists():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
                cwd=folder,
                check=True,
                timeout=NPM_TIMEOUT_S,
            )
        node = node_for(version)
        require_tool(node is not None, f"node for pg-boss {version}")
        nodes[version] = node  # type: ignore[assignment]
    major = subprocess.run(
        [nodes["v12"], "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert major.startswith("v22."), major
    return nodes


async def run_scenario(node: str, version: str, url: str, phase: str = "state") -> dict:
    proc = await asyncio.create_subprocess_exec(
        node,
        str(HERE / "scenario.mjs"),
        url,
        str(HERE / version / "boss.mjs"),
        phase,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])
