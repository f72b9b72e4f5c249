"""jobsight: background jobs on Postgres queues and Temporal, observable and safe to roll out.

One import root. The repository's folders map onto it (pyproject.toml's package-dir):

    jobsight             exporter/    the CLI and the sidecar's shared vocabulary
    jobsight.sources     exporter/sources/     one module per polled system
    jobsight.sidecar     exporter/sidecar/     poller, leadership, state, collector, server, pages
    jobsight.health      exporter/health/      trigger specs, triggers, the verdict
    jobsight.settings    exporter/settings/    the sidecar's settings
    jobsight.cli         exporter/cli/         the `jobsight` command
    jobsight.generators  exporter/generators/  `jobsight generate` (dashboards, rules, docs)
    jobsight.devstack    exporter/devstack/    `jobsight dev`: local services and the demo
    jobsight.runners     runners/     the JobRunner interface and its two engines
    jobsight.dashboards  dashboards/  Grafana dashboards as code
    jobsight.alerts      alerts/      Prometheus alert rules as code
    jobsight.migrations  migrations/  the schema

Importing `jobsight` imports nothing else.
"""

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)
