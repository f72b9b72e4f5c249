"""Values in the protobuf JSON mapping that Temporal's answers come in (temporal_api.py): payloads,
durations and timestamps. Pure."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

_TIMESTAMP = re.compile(r"^(?P<base>[^.]+?)(?:\.(?P<fraction>[0-9]+))?(?P<zone>[Zz]|[+-][0-9:]+)?$")


def payload_value(payload: Any) -> Any:
    """A payload, {metadata: {encoding}, data} both base64 (or the HTTP API's shorthand, the
    value itself): JSON payloads decoded, a null payload None, anything else as text."""
    if not isinstance(payload, dict) or ("data" not in payload and "metadata" not in payload):
        return payload
    metadata = payload.get("metadata")
    encoding = _b64(metadata.get("encoding", "") if isinstance(metadata, dict) else "")
    data = _b64(payload.get("data", ""))
    if encoding == b"binary/null":
        return None
    if encoding.startswith(b"json/"):
        try:
            return json.loads(data)
        except ValueError:
            pass
    return data.decode("utf-8", "replace")


def _b64(text: Any) -> bytes:
    try:
        return base64.b64decode(str(text), validate=False)
    except (binascii.Error, ValueError):
        return b""


def seconds_of(duration: Any) -> float:
    """A JSON duration ("2.219509996s"); absent or unreadable is 0."""
    text = str(duration or "").strip()
    try:
        return float(text[:-1]) if text.endswith("s") else 0.0
    except ValueError:
        return 0.0


def unix_of(timestamp: Any) -> float | None:
    """An RFC 3339 timestamp with up to nanoseconds ("2026-11-30T11:03:50.359379631Z") as Unix
    time; absent, unreadable or Temporal's zero time (year 1) is None."""
    found = _TIMESTAMP.match(str(timestamp or "").strip())
    if not found:
        return None
    zone = found["zone"] or "Z"
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(found["base"] + zone)
    except ValueError:
        return None
    if moment.year <= 1:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() + float("0." + (found["fraction"] or "0"))
