"""`jobsight serve`: the sidecar."""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import replace
from typing import Any


def register(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the sidecar: metrics, traces and health of every job source",
        description="Polls the jobs tables, pgqueue, pg-boss, Temporal and PostgreSQL (one "
        "sidecar of a group at a time, by advisory lock), serves /metrics, /livez, /readyz and "
        "a status page, and exports finished jobs as OTLP traces. Settings come from the "
        "environment (JOBSIGHT_*, DATABASE_URL, TEMPORAL_*, OTEL_*) over an optional YAML file; "
        "docs/settings.md lists every one. Endpoints: /metrics (Prometheus; OpenMetrics with "
        "exemplars), /livez and /readyz[/<check>] (Kubernetes probes, open without a user), "
        "/verdict (JSON, for Argo Rollouts), /gate and /rollback (Flagger webhooks), / (the "
        "status page), /queues, /failures, /schedules, /jobs and /audit (the operator console; "
        "docs/console.md). SIGHUP, or a change of the settings file, reloads the settings that may "
        "change at run time (thresholds, hold times, objectives, intervals; docs/settings.md).",
    )
    serve.add_argument(
        "--config", metavar="FILE", help="YAML settings file (default: $JOBSIGHT_CONFIG)"
    )
    serve.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="Prometheus exporters' web configuration: TLS, client certificates, basic auth "
        "(default: $JOBSIGHT_WEB_CONFIG_FILE; docs/security.md)",
    )
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from jobsight.cli.common import require_free_port
    from jobsight.settings import SidecarSettings, load_settings
    from jobsight.sidecar.app import serve

    def load() -> SidecarSettings:  # at start, and again at each reload
        loaded = load_settings(os.environ, args.config)
        if args.web_config_file:
            loaded = replace(loaded, web_config_file=args.web_config_file)
        return loaded

    settings = load()
    require_free_port(settings.host, settings.port)  # before anything connects or logs
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config_path = args.config or os.environ.get("JOBSIGHT_CONFIG", "")
    asyncio.run(serve(settings, reload_from=(load, config_path)))
    return 0
