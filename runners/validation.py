"""Input checks shared by every runner and the JobService: pure, each error names the field."""

from __future__ import annotations

import json
import math
import re
import unicodedata
import uuid
from typing import Any

from jobsight.runners.errors import ValidationError

MAX_JOB_NAME_LENGTH = 128
DEFAULT_MAX_METADATA_BYTES = 256 * 1024


def check_uuid(field: str, value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a UUID, got {type(value).__name__}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError(field, f"must be a UUID, got {value[:64]!r}") from None


def check_job_name(value: object, field: str = "job_name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    if len(value) > MAX_JOB_NAME_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_JOB_NAME_LENGTH} characters")
    if value != value.strip() or any(ch.isspace() and ch != " " for ch in value):
        raise ValidationError(field, "must not have surrounding or control whitespace")
    return check_text(value, field)


def check_text(value: str, field: str) -> str:
    """Text PostgreSQL can store: no control characters (NUL above all) and no lone surrogates
    (what Python makes of bytes that are not UTF-8, e.g. in an OSError's file name)."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise ValidationError(field, f"must not contain the character {ch!r}")
    return value


# One encoder for every call: json.dumps with any option builds a new one each time, which was
# half the cost of encoding a small payload. Text outside ASCII is kept as it is, so that a lone
# surrogate shows when the text is encoded to UTF-8 (PostgreSQL's jsonb refuses one).
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
# A NUL in a string is written \u0000, which jsonb refuses; a backslash before it doubled (an even
# number of them) is text the user wrote, e.g. "C:\\u0000dir", and is kept.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def encode_json(value: Any, field: str, max_bytes: int = DEFAULT_MAX_METADATA_BYTES) -> str:
    """The JSON text of any JSON value: finite numbers only, no NULs, no lone surrogates, not
    nested deeper than the encoder can go, bounded in size (UTF-8 bytes)."""
    try:
        text = _ENCODER.encode(value)
    except RecursionError:
        raise ValidationError(field, "is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, f"is not JSON-serialisable: {exc}") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise ValidationError(field, f"must not contain the lone surrogate {bad!r}") from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise ValidationError(field, "must not contain NUL characters (Postgres rejects them)")
    if size > max_bytes:
        raise ValidationError(field, f"is {size} bytes as JSON; the limit is {max_bytes}")
    return text


def encode_payload(
    value: Any, field: str = "metadata", max_bytes: int = DEFAULT_MAX_METADATA_BYTES
) -> str:
    """The JSON text of a job payload, which must be a JSON object (None means {})."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValidationError(field, f"must be a JSON object, got {type(value).__name__}")
    return encode_json(value, field, max_bytes)


def check_progress(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValidationError("progress", "must be a number between 0 and 1")
    if not 0 <= value <= 1:
        raise ValidationError("progress", f"must be between 0 and 1, got {value}")
    return float(value)
