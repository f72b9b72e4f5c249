"""`jobsight verdict`: the rollback verdict for CI/CD gates, from a running sidecar (--url) or
straight from the database (polling every enabled source once, no hold time).

Exit codes: 0 ok, 1 degraded, 3 rollback, 4 unknown (also: the sidecar could not be reached),
5 inconclusive (a --version below its minimum sample); 2 is a bad setting, as for every jobsight
command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from jobsight.health.state import State

if TYPE_CHECKING:  # the command's own imports load when it runs, not with every command
    from jobsight.settings import SidecarSettings

EXIT_CODES = {
    State.OK: 0,
    State.DEGRADED: 1,
    State.ROLLBACK: 3,
    State.UNKNOWN: 4,
    State.INCONCLUSIVE: 5,
}
HTTP_TIMEOUT_S = 10.0


async def from_sidecar(url: str, version: str | None, baseline: str | None) -> dict[str, Any]:
    import aiohttp

    params = {"version": version} if version else {}
    if version and baseline:
        params["baseline"] = baseline
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url.rstrip("/") + "/verdict", params=params) as response:
            if response.status != 200:
                raise ConnectionError(f"{url}/verdict answered {response.status}")
            body: dict[str, Any] = await response.json()
            return body


async def from_database(
    settings: SidecarSettings, version: str | None, baseline: str | None
) -> dict[str, Any]:
    import asyncpg

    from jobsight import codec
    from jobsight.health.verdict import unheld_verdict
    from jobsight.sidecar.app import build_sources, server_settings
    from jobsight.sources.base import PollContext
    from jobsight.sources.status import SourceStatus, SourceView, describe

    settings = replace(settings, traces=False)
    views: dict[str, SourceView] = {}
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=0,
        max_size=4,
        timeout=10,
        server_settings=server_settings(settings),
    )
    try:
        for name, source in build_sources(settings).items():
            began = time.time()
            try:
                snapshot = await asyncio.wait_for(
                    source.poll(PollContext(settings, pool)), settings.poll_timeout
                )
                views[name] = SourceView(
                    snapshot, SourceStatus(True, time.time(), began, time.time() - began)
                )
            except Exception as exc:  # a down source makes its triggers unknown
                views[name] = SourceView(
                    None, SourceStatus(False, None, began, time.time() - began, describe(exc))
                )
    finally:
        await pool.close()
    verdict = unheld_verdict(settings, views, time.time(), version)
    if version and baseline:
        from jobsight.health.canary import ANSWER_STATES, analysis_body, analysis_of, policy_of

        analysis = analysis_of(views, version, baseline, policy_of(settings))
        verdict = replace(verdict, verdict=ANSWER_STATES[analysis.answer])
        body: dict[str, Any] = codec.to_jsonable(verdict)
        body["analysis"] = analysis_body(analysis)
        return body
    body = codec.to_jsonable(verdict)
    return body


def analysis_lines(analysis: dict[str, Any]) -> list[str]:
    """The canary analysis, as `jobsight verdict` prints it above the triggers."""
    lines = [
        f"canary {analysis['canary']} against {analysis['baseline']}: {analysis['answer']}",
        f"  {analysis['reason']}",
    ]
    for e in analysis["rising_errors"]:
        counts = f"{e['canary']} against {e['baseline']}"
        lines.append(f"  rising on the canary: {e['error']} ({counts})")
    if crashes := analysis.get("crashes"):
        mine, theirs = crashes["canary"], crashes["baseline"]
        lines.append(
            f"  crashed pgqueue workers: {mine['crashed']}/{mine['workers']} on the canary, "
            f"{theirs['crashed']}/{theirs['workers']} on the baseline"
        )
    lines.append(f"  next: {analysis['next_action']}")
    return lines


def table(body: dict[str, Any]) -> str:
    from jobsight.sidecar.pages import fmt

    scope = f" (version {body['version']})" if body.get("version") else ""
    lines = [f"verdict: {body['verdict']}{scope}", ""]
    analysis = body.get("analysis")
    if analysis:
        lines[1:1] = analysis_lines(analysis)
    header = ("trigger", "state", "value", "degraded", "rollback", "window", "detail")
    rows = [header]
    for t in body["triggers"]:
        rows.append(
            (
                t["name"],
                t["state"],
                fmt(t["value"], t["unit"]),
                fmt(t["degraded"], t["unit"]),
                fmt(t["rollback"], t["unit"]) if t["rollback"] is not None else "-",
                fmt(t["window"], "seconds") if t["window"] else "-",
                t["detail"],
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def run(
    url: str | None,
    settings_loader: Callable[[], SidecarSettings],
    version: str | None,
    as_json: bool,
    baseline: str | None = None,
) -> int:
    import aiohttp
    import asyncpg

    from jobsight.settings import SettingError
    from jobsight.sources.status import describe

    try:
        if url:
            body = asyncio.run(from_sidecar(url, version, baseline))
        else:
            body = asyncio.run(from_database(settings_loader(), version, baseline))
    except SettingError:
        raise
    except (
        OSError,
        aiohttp.ClientError,
        TimeoutError,
        asyncpg.PostgresError,
        ConnectionError,
    ) as exc:
        print(f"jobsight verdict: cannot get a verdict: {describe(exc)}")
        return EXIT_CODES[State.UNKNOWN]
    print(json.dumps(body, indent=2) if as_json else table(body))
    return EXIT_CODES[State(body["verdict"])]


def register(sub: Any) -> None:
    verdict = sub.add_parser(
        "verdict",
        help="print the rollback verdict and exit with its code (for CI/CD gates)",
        description="Asks a running sidecar (--url) or, without --url, polls the database and "
        "Temporal once with the sidecar's settings, and prints every trigger. Exit codes: "
        "0 ok, 1 degraded, 3 rollback, 4 unknown (or no answer), 5 inconclusive (a --version "
        "below its minimum sample), 2 bad setting.",
    )
    verdict.add_argument("--url", help="a sidecar's base URL, e.g. http://127.0.0.1:9465")
    verdict.add_argument("--version", help="judge one worker version (canary scope)")
    verdict.add_argument(
        "--baseline",
        help="compare --version with this version (or `auto`: the busiest other one) by the "
        "canary analysis: pass 0, fail 3, not enough evidence yet 5",
    )
    verdict.add_argument("--json", action="store_true", help="print the /verdict JSON")
    verdict.add_argument("--config", metavar="FILE", help="YAML settings (database mode)")
    verdict.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    from jobsight.settings import load_settings

    return run(
        args.url,
        lambda: load_settings(os.environ, args.config),
        args.version,
        args.json,
        args.baseline,
    )
