"""`jobsight dev`: the local services (PostgreSQL, Temporal) and the demo. Never imported by the
running sidecar."""
