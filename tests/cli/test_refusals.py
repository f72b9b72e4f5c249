"""Every refusal is one clear line and exit code 2, never a traceback, and never a password: the
real `jobsight` command, run as a user would, against each mistake (issue 17)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from jobsight import dburl
from jobsight.settings import SidecarSettings
from tests.support.processes import jobsight

SECRET = "s3cret-Pa55"
UNREACHABLE = f"postgresql://u:{SECRET}@127.0.0.1:1/db"


def refused(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """The one line a refused command prints (asserting exit 2, one line, no secret)."""
    done = jobsight(
        *args, env={"PATH": "/usr/bin:/bin", **(env or {})}, inherit=False, timeout=timeout
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    assert len(lines) == 1, done.stderr
    assert SECRET not in done.stderr + done.stdout and "Traceback" not in done.stderr
    return lines[0]


BAD_URLS = [  # (DATABASE_URL, the line says, found before connecting)
    (f"postgresql://u:{SECRET}@localhost:notaport/db", "port must be a number", True),
    (f"postgresql://u:{SECRET}@localhost:99999/db", "port must be a number", True),
    (f"postgresql://u:{SECRET}@localhost/db?sslmode=sometimes", "sslmode must be one of", True),
    (f"host=localhost password={SECRET} dbname=x", "must be a postgresql:// URL", True),
    (f"host=localhost password='{SECRET} x' dbname=x", "password=***", True),
    ("", "DATABASE_URL: not set", True),
    (f"postgresql://u@127.0.0.1:1/db?password={SECRET}", "?password=***", False),
    (f"postgresql://u:{SECRET}@1@127.0.0.1:1/db", "cannot connect to postgresql://u:***@", False),
]


@pytest.mark.parametrize(("url", "message", "syntax"), BAD_URLS)
@pytest.mark.parametrize("command", [["migrate", "up"], ["serve"]])
def test_a_bad_database_url_is_one_line_without_its_password(
    command: list[str], url: str, message: str, syntax: bool
) -> None:
    if command == ["serve"] and not syntax:
        return  # serve starts and retries an unreachable database; its /readyz says so
    line = refused(*command, env={"DATABASE_URL": url} if url else {})
    assert line.startswith("jobsight: DATABASE_URL") and message in line, line


def test_secrets_stay_out_of_reprs_and_error_text() -> None:
    settings = SidecarSettings(database_url=UNREACHABLE, temporal_api_key=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    echoed = f'could not connect: "{UNREACHABLE}" and password "{SECRET}"'
    assert SECRET not in dburl.scrub(echoed, UNREACHABLE)
    encoded = "postgresql://u:p%40ss%2Fword@h/db"
    assert "p@ss/word" not in dburl.scrub("auth failed for p@ss/word", encoded)
    assert dburl.redact("postgresql://a:b@h:5/d") == "postgresql://a:***@h:5/d"
    assert dburl.redact("postgresql://a@h/d?sslpassword=x&sslmode=require") == (
        "postgresql://a@h/d?sslpassword=***&sslmode=require"
    )


def test_settings_mistakes(tmp_path: Path) -> None:
    broken = tmp_path / "jobsight.yaml"
    broken.write_text("poll_interval: 5s\ntriggers: [unclosed\n")
    env = {"DATABASE_URL": UNREACHABLE}
    line = refused("serve", env={**env, "JOBSIGHT_CONFIG": str(broken)})
    assert str(broken) in line and "line 3" in line, line
    line = refused("serve", env={**env, "JOBSIGHT_POLL_INTERVALL": "5s"})
    assert "JOBSIGHT_POLL_INTERVALL: not a jobsight setting" in line
    assert "did you mean JOBSIGHT_POLL_INTERVAL?" in line


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_taken_port_stops_serve_and_dev_at_once(taken_port: int) -> None:
    env = {"DATABASE_URL": UNREACHABLE, "JOBSIGHT_HOST": "127.0.0.1",
           "JOBSIGHT_PORT": str(taken_port)}  # fmt: skip
    for command in (["serve"], ["dev", "--no-temporal"]):
        line = refused(*command, env=env, timeout=30)
        assert f"JOBSIGHT_PORT: 127.0.0.1:{taken_port}" in line, line


async def test_migrate_by_a_role_that_may_not_create_names_the_grant(empty_db: str) -> None:
    admin = await asyncpg.connect(empty_db)
    try:
        await admin.execute("DROP ROLE IF EXISTS jobsight_reader")
        await admin.execute(f"CREATE ROLE jobsight_reader LOGIN PASSWORD '{SECRET}'")
        await admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
        url = empty_db.replace("postgresql://postgres@", f"postgresql://jobsight_reader:{SECRET}@")
        line = refused("migrate", "up", env={"DATABASE_URL": url})
        assert "role 'jobsight_reader' may not change the schema" in line, line
        assert f'GRANT CREATE ON DATABASE "{database}" TO "jobsight_reader"' in line
    finally:
        await admin.execute("DROP OWNED BY jobsight_reader")
        await admin.execute("DROP ROLE jobsight_reader")
        await admin.close()


def test_a_worker_on_a_database_never_migrated_says_to_migrate(empty_db: str) -> None:
    line = refused(
        "worker", "--handlers", "tests.support.handlers.chaos:registry",
        env={"DATABASE_URL": empty_db},
    )  # fmt: skip
    assert "run `jobsight migrate up`" in line and "jobs" in line, line
