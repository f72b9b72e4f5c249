"""The sidecar's settings: defaults, environment, YAML, validation, documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobsight.settings import SETTINGS, SettingError, load_settings
from tests.support.paths import ROOT


def test_settings_defaults_env_and_yaml(tmp_path: Path):
    settings = load_settings({"DATABASE_URL": "postgresql://u@h/db"})
    assert settings.sources == ("jobs", "pgqueue", "pgboss", "postgres")
    assert settings.interval("jobs") == 15.0 and not settings.traces
    config = tmp_path / "jobsight.yaml"
    config.write_text("poll_interval: 2s\nsources: [jobs, temporal]\njobs_interval: 500ms\n")
    env = {
        "DATABASE_URL": "postgresql://u@h/db",
        "JOBSIGHT_POLL_INTERVAL": "3s",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    }
    settings = load_settings(env, str(config))
    assert settings.poll_interval == 3.0  # environment over the file
    assert settings.interval("jobs") == 0.5 and settings.interval("temporal") == 3.0
    assert settings.sources == ("jobs", "temporal") and settings.traces
    assert load_settings({**env, "TEMPORAL_ADDRESS": "t:7233"}).sources[-1] == "temporal"
    over_http = load_settings({**env, "JOBSIGHT_TEMPORAL_HTTP_ADDRESS": "t:7243"})
    assert over_http.sources[-1] == "temporal" and over_http.temporal_http_address == "t:7243"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DATABASE_URL: not set"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must be a postgresql:// URL"),
        ({"JOBSIGHT_POLL_INTERVAL": "soon"}, "JOBSIGHT_POLL_INTERVAL: must be a duration"),
        ({"JOBSIGHT_POLL_INTERVAL": "0s"}, "JOBSIGHT_POLL_INTERVAL: must be greater than zero"),
        ({"JOBSIGHT_SOURCES": "jobs,redis"}, "JOBSIGHT_SOURCES: unknown source 'redis'"),
        ({"JOBSIGHT_PORT": "70000"}, "JOBSIGHT_PORT: must be a TCP port"),
        ({"JOBSIGHT_PGBOSS_SCHEMA": "pgboss; drop"}, "JOBSIGHT_PGBOSS_SCHEMA: must be a plain SQL"),
        ({"JOBSIGHT_MAX_JOB_NAMES": "0"}, "JOBSIGHT_MAX_JOB_NAMES: must be a whole number >= 1"),
        ({"JOBSIGHT_TRACES": "maybe"}, "JOBSIGHT_TRACES: must be auto, true or false"),
        ({"JOBSIGHT_COMMIT_LAG": "10m"}, "JOBSIGHT_COMMIT_LAG: must not exceed"),
        (
            {"JOBSIGHT_TEMPORAL_HTTP_ADDRESS": "http://t:7243"},
            "JOBSIGHT_TEMPORAL_HTTP_ADDRESS: must be host:port",
        ),
        (
            {"JOBSIGHT_TEMPORAL_HTTP_ADDRESS": "t:7243", "JOBSIGHT_TEMPORAL_TASK_QUEUES": "a,b/c"},
            "JOBSIGHT_TEMPORAL_TASK_QUEUES: 'b/c' has a '/', which Temporal's HTTP API cannot",
        ),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], message: str):
    base = {} if "DATABASE_URL" in env or not env else {"DATABASE_URL": "postgresql://u@h/d"}
    with pytest.raises(SettingError, match=message.replace("(", r"\(")):
        load_settings({**base, **env})


def test_bad_yaml_file_names_the_key(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("pol_interval: 2s\n")
    with pytest.raises(SettingError, match="unknown setting 'pol_interval'"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d"}, str(config))
    config.write_text("- a list\n")
    with pytest.raises(SettingError, match="must hold a mapping"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d"}, str(config))
    with pytest.raises(SettingError, match="cannot read"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d"}, str(tmp_path / "missing.yaml"))


def test_secrets_never_appear_in_setting_errors():
    with pytest.raises(SettingError) as caught:
        load_settings({"DATABASE_URL": "mysql://user:hunter2@h/db"})
    assert "hunter2" not in str(caught.value)


def test_the_docs_document_every_setting():
    readme = (ROOT / "docs" / "settings.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert missing == []
