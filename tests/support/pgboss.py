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


# Each folder pins one pg-boss release: 9 (schema 20: camel-case columns, no queue table; its
# boss.mjs adapts 9's calls to the script's), 10 (schema 24), 11 and 12.5 (schema 26, no cached
# failed count), and the latest 12 (cached counters, job_i16). 11 and later need Node 22, which
# their folders install from the `node` npm package; 9 and 10 run on the system's Node 20.
RELEASES = ("v9", "v10", "v11", "v12_5", "v12")
SYSTEM_NODE = ("v9", "v10")


def node_for(version: str) -> str | None:
    if version not in SYSTEM_NODE:
        node = HERE / version / "node_modules" / ".bin" / "node"
        return str(node) if node.exists() else None
    return shutil.which("node")


@pytest.fixture(scope="session")
def pgboss_installs() -> dict[str, str]:
    """npm ci in each version folder (once per session when node_modules is missing)."""
    require_tool(shutil.which("npm") is not None, "npm (Node.js)")
    nodes = {}
    for version in RELEASES:
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
    for version in set(RELEASES) - set(SYSTEM_NODE):
        major = subprocess.run(
            [nodes[version], "--version"], capture_output=True, text=True, check=True
        ).stdout
        assert major.startswith("v22."), (version, major)
    return nodes


async def run_scenario(node: str, version: str, url: str, phase: str = "state", *args: str) -> dict:
    proc = await asyncio.create_subprocess_exec(
        node,
        str(HERE / "scenario.mjs"),
        url,
        str(HERE / version / "boss.mjs"),
        phase,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])
