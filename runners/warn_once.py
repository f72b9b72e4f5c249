"""Warnings a process gives once, however often their cause comes back (a missing grant, an id
a transport cannot address): the first says what to fix, the rest would only fill the log."""

from __future__ import annotations

import logging

_given: set[tuple[str, str]] = set()


def warn_once(logger: logging.Logger, key: str, message: str, *args: object) -> None:
    """Logs `message` at warning level the first time this logger is given `key`."""
    if (logger.name, key) in _given:
        return
    _given.add((logger.name, key))
    logger.warning(message, *args)
