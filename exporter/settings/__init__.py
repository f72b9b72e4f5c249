"""The sidecar's settings, split by concern:

    declare.py   how a setting is declared (environment name, default, parser, help), once
    parsing.py   the parsers of setting values
    sidecar.py   SidecarSettings: every setting, declared as its field
    triggers.py  the trigger settings, made from the trigger specs
    load.py      environment over YAML over defaults, validated once; SETTINGS, the full table

Precedence: environment, then the YAML file (JOBSIGHT_CONFIG), then the default. The settings
table of docs/settings.md and the chart's values schema are generated from SETTINGS.
"""

from jobsight.settings.declare import Setting, SettingError
from jobsight.settings.load import SETTINGS, load_settings, settings_fields
from jobsight.settings.parsing import parse_duration
from jobsight.settings.sidecar import SidecarSettings

__all__ = [
    "SETTINGS",
    "Setting",
    "SettingError",
    "SidecarSettings",
    "load_settings",
    "parse_duration",
    "settings_fields",
]
