"""Reloading a running sidecar (`jobsight serve` as a real process): SIGHUP and a change of the
JOBSIGHT_CONFIG file (swapped in as a ConfigMap volume is) put new thresholds in force, keep the
held states of the triggers whose settings did not change, and export the outcome; a bad reload
(a setting that needs a restart, a value that does not parse) keeps the running settings and
says why."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import yaml

from tests.support.sidecar import SidecarProcess
from tests.support.waiting import eventually

OK = "jobsight_config_last_reload_successful"
SUCCESS_AT = "jobsight_config_last_reload_success_timestamp_seconds"
THRESHOLD = "jobsight_trigger_threshold"


def write(path: Path, settings: dict[str, Any]) -> None:
    """Writes the file as the kubelet updates a ConfigMap volume: the new content in a new
    folder, then the `..data` symlink swapped to it in one rename (`path` links through it)."""
    folder = path.parent
    version = folder / f"..{time.time_ns()}"
    version.mkdir()
    (version / path.name).write_text(yaml.safe_dump(settings))
    (folder / "..data_tmp").symlink_to(version.name)
    (folder / "..data_tmp").replace(folder / "..data")
    if not path.is_symlink():
        path.symlink_to(f"..data/{path.name}")


async def degraded_threshold(sidecar: SidecarProcess) -> float | None:
    return await sidecar.value(THRESHOLD, trigger="error_rate", level="degraded")


async def triggers(sidecar: SidecarProcess) -> dict[str, dict[str, Any]]:
    status, body = await sidecar.get("/verdict")
    assert status == 200, body
    return {t["name"]: t for t in json.loads(body)["triggers"]}


async def test_sighup_and_file_changes_reload_good_settings_and_refuse_bad_ones(
    migrated_db: str, tmp_path: Path
) -> None:
    (tmp_path / "config").mkdir()
    config = tmp_path / "config" / "jobsight.yaml"
    settings: dict[str, Any] = {"error_rate_degraded": 0.01, "host": "127.0.0.1"}
    write(config, settings)
    sidecar = SidecarProcess(migrated_db, tmp_path, JOBSIGHT_CONFIG=str(config))
    del sidecar.env["JOBSIGHT_HOST"]  # the listen address comes from the file
    sidecar.start()
    try:
        await sidecar.listening()
        await eventually(lambda: _equals(degraded_threshold(sidecar), 0.01), 20, "first poll")
        loaded_at = await sidecar.value(SUCCESS_AT)
        assert await sidecar.value(OK) == 1 and loaded_at is not None
        await eventually(lambda: _known(sidecar), 20, "triggers known")
        before = await triggers(sidecar)

        # A good reload on SIGHUP: the new threshold, the other triggers' states held on.
        settings["error_rate_degraded"] = 0.03
        write(config, settings)
        sidecar.signal(signal.SIGHUP)
        await eventually(lambda: _equals(degraded_threshold(sidecar), 0.03), 10, "reloaded")
        after = await triggers(sidecar)
        assert after["queue_depth"]["since"] == before["queue_depth"]["since"]  # kept
        assert after["error_rate"]["since"] > before["error_rate"]["since"]  # measured afresh
        assert await sidecar.value(OK) == 1
        assert (await sidecar.value(SUCCESS_AT) or 0) > loaded_at

        # A setting that needs a restart: refused as a whole, named, the old settings stay.
        write(config, {**settings, "error_rate_degraded": 0.02, "host": "127.0.0.2",
                       "instance": "other"})  # fmt: skip
        sidecar.signal(signal.SIGHUP)
        await eventually(lambda: _equals(sidecar.value(OK), 0), 10, "refusal exported")
        assert await degraded_threshold(sidecar) == 0.03
        assert "cannot change without a restart: JOBSIGHT_INSTANCE, JOBSIGHT_HOST" in sidecar.log()
        assert "reloaded (SIGHUP): triggers (error_rate)" in sidecar.log()

        # The file changes again, without a signal: a bad value is refused and named...
        write(config, {**settings, "error_rate_degraded": "lots"})
        await eventually(lambda: _in_log(sidecar, "error_rate_degraded"), 15, "file watched")
        assert await sidecar.value(OK) == 0 and await degraded_threshold(sidecar) == 0.03
        # ...and a good one is applied.
        write(config, {**settings, "error_rate_degraded": 0.04})
        await eventually(lambda: _equals(degraded_threshold(sidecar), 0.04), 15, "file reload")
        assert await sidecar.value(OK) == 1
        assert sidecar.proc is not None and sidecar.proc.poll() is None  # never restarted
    finally:
        print(sidecar.log())
        sidecar.stop()


async def _equals(value: Any, expected: float) -> bool:
    return bool(await value == expected)


async def _known(sidecar: SidecarProcess) -> bool:
    found = await triggers(sidecar)
    return found["queue_depth"]["state"] != "unknown" and time.time() > 0


async def _in_log(sidecar: SidecarProcess, text: str) -> bool:
    return text in sidecar.log() and "refused" in sidecar.log().split(text)[0].splitlines()[-1]
