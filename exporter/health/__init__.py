"""Health: the rollback triggers (specs and measurements) and the verdict."""
