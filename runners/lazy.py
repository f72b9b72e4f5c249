"""Names a package exports, loaded from their modules on first use (PEP 562): the Temporal
workflow sandbox re-imports the packages above the workflow's module for every workflow run, so
each of those packages must import nothing when it is imported."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: name -> its submodule in `homes`, imported once and
    then kept in the package's namespace."""

    def load(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return load
