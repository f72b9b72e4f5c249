"""What a reload may change (SIGHUP, or a change of the JOBSIGHT_CONFIG file): the settings an
operator tunes during an incident, each read afresh wherever it is used. Every other setting is
fixed for the life of the process (what it listens on, which database and sources it opens,
the pools' timeouts, the console's wiring); a reload that changes one is refused as a whole,
naming them. Pure."""

from __future__ import annotations

from dataclasses import fields

from jobsight.settings.declare import SettingError
from jobsight.settings.load import SETTINGS
from jobsight.settings.sidecar import SidecarSettings

RELOADABLE = frozenset({
    "poll_interval", "jobs_interval", "pgqueue_interval", "pgboss_interval",
    "postgres_interval", "temporal_interval",
    "canary_window", "canary_alpha", "canary_failure_margin", "canary_slow_margin",
    "canary_min_jobs",
    "stuck_after", "recent_window", "long_running_after",
    "max_finished_per_poll", "max_traces_per_poll",
    "objectives", "readiness_fail_on", "gate_halt_on", "log_level",
    "trigger_hold", "triggers",  # every JOBSIGHT_<TRIGGER>_* setting is collected in `triggers`
})  # fmt: skip


def changed_fields(old: SidecarSettings, new: SidecarSettings) -> list[str]:
    """The settings fields whose values differ, in declaration order."""
    return [f.name for f in fields(SidecarSettings) if getattr(old, f.name) != getattr(new, f.name)]


def changed_triggers(old: SidecarSettings, new: SidecarSettings) -> set[str]:
    """Triggers whose thresholds, window, sample or hold differ: their held states start over."""
    return {name for name, cfg in new.triggers.items() if old.triggers.get(name) != cfg}


def check_reload(old: SidecarSettings, new: SidecarSettings) -> list[str]:
    """The changed fields, when all of them may change at run time; else SettingError naming
    (by environment name) those that need a restart."""
    changed = changed_fields(old, new)
    fixed = [name for name in changed if name not in RELOADABLE]
    if fixed:
        env = {setting.field: setting.env for setting in SETTINGS}
        names = ", ".join(env.get(name, name) for name in fixed)
        raise SettingError(f"cannot change without a restart: {names}")
    return changed
