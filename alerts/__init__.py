"""Prometheus alert rules as code (generated rules committed beside it)."""
