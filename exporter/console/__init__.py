"""The operator console: the pages the sidecar serves beside its status page."""
