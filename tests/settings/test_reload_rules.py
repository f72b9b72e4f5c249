"""What a reload may change (settings/reload.py), and what the evaluator keeps across one: pure."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobsight.health.verdict import Evaluator
from jobsight.settings import SettingError, SidecarSettings, load_settings
from jobsight.settings.reload import check_reload
from tests.support.canned import BASE, NOW, views, window_row

SECRET_URL = "postgresql://u:hunter2@db/app"


def loaded(**env: str) -> SidecarSettings:
    return load_settings({"DATABASE_URL": SECRET_URL, **env})


def test_tunables_change_and_the_rest_is_refused_by_name() -> None:
    old = loaded()
    new = loaded(JOBSIGHT_ERROR_RATE_DEGRADED="2%", JOBSIGHT_POLL_INTERVAL="5s",
                 JOBSIGHT_OBJECTIVES="import: 99% succeed")  # fmt: skip
    assert check_reload(old, new) == ["poll_interval", "objectives", "triggers"]
    moved = loaded(JOBSIGHT_PORT="9999", JOBSIGHT_ERROR_RATE_DEGRADED="2%")
    with pytest.raises(SettingError, match=r"^cannot change without a restart: JOBSIGHT_PORT$"):
        check_reload(old, moved)
    elsewhere = replace(old, database_url="postgresql://u:other-secret@db2/app")
    with pytest.raises(SettingError) as refused:
        check_reload(old, elsewhere)
    assert str(refused.value) == "cannot change without a restart: DATABASE_URL"
    assert "secret" not in str(refused.value) and "hunter2" not in str(refused.value)
    assert check_reload(old, loaded()) == []


def test_the_evaluator_keeps_held_states_of_unchanged_triggers_only() -> None:
    evaluator = Evaluator(BASE)
    data = views([window_row("a", 100, 0)])
    first = {t.name: t for t in evaluator.evaluate(data, NOW)[None].triggers}
    stricter = replace(BASE.triggers["error_rate"], degraded=0.02)
    retuned = replace(BASE, triggers={**BASE.triggers, "error_rate": stricter})
    evaluator.reconfigure(retuned, {"error_rate"})
    later = {t.name: t for t in evaluator.evaluate(data, NOW + 60)[None].triggers}
    assert later["queue_depth"].since == first["queue_depth"].since
    assert later["error_rate"].since == NOW + 60 and later["error_rate"].degraded == 0.02
