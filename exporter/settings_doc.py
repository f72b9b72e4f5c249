"""The README's table of the sidecar's settings, generated from exporter.settings.SETTINGS."""

from __future__ import annotations

from exporter.settings import SETTINGS


def render_table() -> str:
    lines = ["| environment | YAML key | default | meaning |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "-"
        lines.append(f"| `{setting.env}` | `{setting.field}` | {default} | {setting.help} |")
    return "\n".join(lines) + "\n"
