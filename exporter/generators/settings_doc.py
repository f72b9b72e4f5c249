"""The table of the sidecar's settings (docs/settings.md) and of the triggers (docs/gates.md),
generated from jobsight.settings.SETTINGS."""

from __future__ import annotations

from jobsight.settings import SETTINGS


def render_table() -> str:
    from jobsight.settings.reload import RELOADABLE

    lines = [
        "| environment | YAML key | default | reload | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "-"
        live = setting.field in RELOADABLE or setting.group == "triggers"
        lines.append(
            f"| `{setting.env}` | `{setting.field}` | {default} | {'yes' if live else 'restart'} "
            f"| {setting.help} |"
        )
    return "\n".join(lines) + "\n"


def render_triggers() -> str:
    from jobsight.health.specs import TRIGGERS
    from jobsight.sidecar.pages import fmt

    lines = [
        "| trigger | measures | data from | degraded above | rollback | window | min. sample |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in TRIGGERS:
        rollback = (
            "-"
            if t.rollback is None
            else (("at or above " if t.rollback_inclusive else "above ") + fmt(t.rollback, t.unit))
        )
        window = fmt(t.window, "seconds") if t.window else "-"
        lines.append(
            f"| `{t.name}` | {t.help} | {', '.join(t.sources)} | "
            f"{fmt(t.degraded, t.unit)} | {rollback} | {window} | "
            f"{t.min_sample or '-'} |"
        )
    return "\n".join(lines) + "\n"
