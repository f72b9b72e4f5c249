"""Registers the shared fixtures for every test: tests/support/fixtures.py (the project's wheel,
PostgreSQL, Temporal, databases, connections, pools) and tests/support/pgboss.py (real pg-boss)."""

pytest_plugins = ("tests.support.fixtures", "tests.support.pgboss")
