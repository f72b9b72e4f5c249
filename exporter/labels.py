"""Bounded label values: at most `limit` distinct names per label, the rest summed under
'other', so an application that invents job names cannot blow up the series count. Pure."""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"
MAX_LABEL_LENGTH = 120


def clean(value: str | None) -> str:
    text = (value or "").strip()
    return text[:MAX_LABEL_LENGTH] if text else "unknown"


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
