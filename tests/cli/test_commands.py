"""The `jobsight` command as a user runs it: --help everywhere, clear errors, exit codes."""

from __future__ import annotations

import pytest

from jobsight import dburl
from jobsight.runners.migrator import load_migrations
from tests.support.processes import jobsight


@pytest.mark.parametrize(
    "command",
    [[], ["migrate"], ["dev"], ["worker"], ["serve"], ["generate"], ["verdict"], ["grants"]],
)
def test_help(command: list[str]) -> None:
    done = jobsight(*command, "--help")
    assert done.returncode == 0 and "usage: jobsight" in done.stdout


def test_every_command_and_option_says_what_it_does() -> None:
    import argparse

    from jobsight.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    silent = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not action.help
    ]
    assert silent == []
    assert all(sub.description for sub in commands.choices.values())
    serve_help = jobsight("serve", "--help").stdout
    for endpoint in ("/metrics", "/livez", "/readyz", "/verdict", "/gate", "/rollback"):
        assert endpoint in serve_help


def test_migrate_up_status_down(migrated_db: str, empty_db: str) -> None:
    up = jobsight("migrate", "up", "--database-url", empty_db)
    assert up.returncode == 0, up.stderr
    assert "0001_jobs_tables" in up.stdout and "0002_runner_columns" in up.stdout
    status = jobsight("migrate", "status", "--database-url", empty_db)
    assert status.stdout.count("applied") == len(load_migrations())
    again = jobsight("migrate", "up", "--database-url", empty_db)
    assert "nothing to do" in again.stdout
    down = jobsight("migrate", "down", "--to", "0", "--database-url", empty_db)
    assert down.returncode == 0 and "0002" in down.stdout and "0001" in down.stdout
    after = jobsight("migrate", "status", "--database-url", empty_db)
    assert after.stdout.count("pending") == len(load_migrations())


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["migrate", "up"], {}, "DATABASE_URL: not set"),
        (["migrate", "up", "--database-url", "mysql://x"], {}, "must be a postgresql:// URL"),
        (
            ["migrate", "up", "--database-url", "postgresql://u:hunter2@127.0.0.1:1/db"],
            {},
            "cannot connect to postgresql://u:***@127.0.0.1:1/db",
        ),
    ],
)
def test_bad_settings_exit_2_with_one_line(args: list[str], env: dict, message: str) -> None:
    done = jobsight(*args, env={"PATH": "/usr/bin:/bin", **env}, inherit=False)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


def test_migrate_to_unknown_version(empty_db: str) -> None:
    done = jobsight("migrate", "up", "--to", "99", "--database-url", empty_db)
    assert done.returncode == 2 and "--to 99" in done.stderr


def test_redact() -> None:
    assert dburl.redact("postgresql://a:b@h:5/d") == "postgresql://a:***@h:5/d"
    assert dburl.redact("postgresql://a@h/d") == "postgresql://a@h/d"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "expected package.module:registry"),
        ("no_such_module_x:registry", "cannot import 'no_such_module_x'"),
        ("tests.support.handlers.chaos:missing", "is nothing, not a HandlerRegistry"),
        ("tests.support.handlers.chaos:chaos", "is function, not a HandlerRegistry"),
        ("tests.support.handlers.empty:registry", "has no handlers registered"),
    ],
)
def test_worker_refuses_bad_handlers(spec: str, message: str) -> None:
    done = jobsight("worker", "--handlers", spec, "--database-url", "postgresql://u@127.0.0.1:1/x")
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_worker_refuses_bad_settings() -> None:
    done = jobsight(
        "worker", "--handlers", "tests.support.handlers.chaos:registry", "--concurrency", "0",
        "--database-url", "postgresql://u@127.0.0.1:1/x",
    )  # fmt: skip
    assert done.returncode == 2 and "concurrency: must be a whole number >= 1" in done.stderr
