"""Durations as operators write them ('15s', '500ms', '2m', '1h', '1d', or plain seconds): one
parser for the runners' settings and the sidecar's (jobsight.settings.parsing re-exports it)."""

from __future__ import annotations

import re

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """'15s', '500ms', '2m', '1h', '1d' or plain seconds -> seconds (> 0)."""
    match = DURATION.match(str(text))
    if not match:
        raise ValueError("must be a duration such as 500ms, 15s, 2m, 1h")
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds
