"""Bounded label values: at most `limit` distinct names per label, the rest summed under
'other', so an application that invents job names cannot blow up the series count. Pure.

A name is its own label value, except where that could merge two names into one series: a
missing or empty name reads `unknown`; a name longer than MAX_LABEL_LENGTH is cut and a name
that is itself `unknown` or `other` is kept apart, each with `~` and a short hash of the whole
name appended (`very-long-job-name…~1a2b3c4d`), so distinct names never share a series."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

OTHER = "other"
UNKNOWN = "unknown"
MAX_LABEL_LENGTH = 120
HASH_CHARS = 8


def clean(value: str | None) -> str:
    if not value:
        return UNKNOWN
    if len(value) <= MAX_LABEL_LENGTH and value not in (UNKNOWN, OTHER):
        return value
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    keep = MAX_LABEL_LENGTH - HASH_CHARS - 1
    return f"{value[:keep]}~{digest[:HASH_CHARS]}"


class LabelCap:
    """Admits names in the order first seen, up to `limit`; later names map to 'other'."""

    def __init__(self, limit: int, admitted: Iterable[str] = ()) -> None:
        self.limit = limit
        self._admitted: dict[str, None] = dict.fromkeys(list(admitted)[:limit])

    def __call__(self, value: str | None) -> str:
        name = clean(value)
        if name in self._admitted:
            return name
        if len(self._admitted) < self.limit and name != OTHER:
            self._admitted[name] = None
            return name
        return OTHER

    @property
    def admitted(self) -> list[str]:
        return list(self._admitted)
