"""Snapshots to JSON and back, for the state a leader publishes and a follower (or the next
leader) reads. Works from the dataclasses' type hints: dataclasses, lists, tuples, str-keyed
dicts, optionals, enums, datetimes (ISO 8601) and plain scalars. Pure; no I/O."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


_PLAIN = frozenset({str, int, float, bool, type(None)})  # JSON as they are


def to_jsonable(value: Any) -> Any:
    """Called for every snapshot a leader stores (each poll, on the serving event loop): the
    common shapes (scalars, lists of them, dataclasses) take the fast paths, by exact type."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list or kind is tuple:
        if all(type(item) in _PLAIN for item in value):
            return list(value)
        return [to_jsonable(item) for item in value]
    names = _field_names(kind)
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    return value


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(kind: type) -> tuple[str, ...] | None:
    """A dataclass's field names (None: not a dataclass), looked up once per class."""
    if kind not in _FIELD_NAMES:
        found = dataclasses.fields(kind) if dataclasses.is_dataclass(kind) else None
        _FIELD_NAMES[kind] = None if found is None else tuple(f.name for f in found)
    return _FIELD_NAMES[kind]


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), separators=(",", ":"), allow_nan=False)


def loads(cls: type[T], text: str | bytes) -> T:
    loaded: T = from_jsonable(cls, json.loads(text))
    return loaded


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_jsonable(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return from_jsonable(inner[0], value)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass(hint, value)
    if origin in _CONTAINERS:
        return _CONTAINERS[origin](typing.get_args(hint), value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if isinstance(hint, type) and issubclass(hint, Enum | float):
        return hint(value)
    return value


def _dataclass(cls: type, value: dict[str, Any]) -> Any:
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: from_jsonable(hints[k], v) for k, v in value.items() if k in known})


def _list(args: tuple[Any, ...], value: list[Any]) -> list[Any]:
    return [from_jsonable(args[0], v) for v in value]


def _tuple(args: tuple[Any, ...], value: list[Any]) -> tuple[Any, ...]:
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(from_jsonable(args[0], v) for v in value)
    return tuple(from_jsonable(a, v) for a, v in zip(args, value, strict=True))


def _dict(args: tuple[Any, ...], value: dict[str, Any]) -> dict[str, Any]:
    return {k: from_jsonable(args[1], v) for k, v in value.items()}


_CONTAINERS: dict[Any, Callable[[tuple[Any, ...], Any], Any]] = {
    list: _list,
    tuple: _tuple,
    dict: _dict,
}
