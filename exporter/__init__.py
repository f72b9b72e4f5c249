"""jobsight exporter: the sidecar that watches jobs wherever they run, and the CLI."""
