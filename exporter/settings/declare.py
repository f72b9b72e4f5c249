"""How a setting is declared: once, as a field of the settings object, with its environment
name, its default as text (what docs/settings.md shows and what the parser reads), its parser
and its help. The YAML key is the field's name. Everything else (loading, validation, the
settings table, the chart's values schema) reads these declarations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from typing import Any


class SettingError(Exception):
    """A setting is missing or invalid; the message names it and the bad value."""


@dataclass(frozen=True)
class Setting:
    field: str  # attribute of SidecarSettings, and the key in the YAML file
    env: str
    default: str  # as text: "" means unset (the field's own default applies)
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False
    group: str = ""  # "triggers": collected into SidecarSettings.triggers


DECLARATION = "jobsight.setting"  # the key of a field's metadata that holds its declaration


def setting(
    env: str,
    default: str,
    parse: Callable[[Any], Any],
    help: str,
    *,
    secret: bool = False,
    value: Any = MISSING,
) -> Any:
    """A settings field: its value before any environment or file is read is the parsed default
    (None when the default is ""), unless `value` says otherwise (an "auto" default, resolved
    when loading). A secret is left out of the settings object's repr."""
    if value is MISSING:
        value = parse(default) if default != "" else None
    declared = {DECLARATION: (env, default, parse, help, secret)}
    return field(default=value, metadata=declared, repr=not secret)  # no secret in any repr
