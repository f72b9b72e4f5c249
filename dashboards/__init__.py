"""Grafana dashboards as code (generated JSON committed beside it)."""
