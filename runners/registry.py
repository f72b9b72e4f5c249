"""The handler registry: job names to handler configs, shared by every engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

from jobsight.runners.errors import DuplicateHandlerError, UnknownJobError
from jobsight.runners.interface import DEFAULT_TIMEOUT, Handler, HandlerConfig, RetryPolicy


class HandlerRegistry:
    """Holds one HandlerConfig per job name.

    Register directly, or with the decorator form::

        registry = HandlerRegistry()

        @registry.handler("generate-invoice", retry=RetryPolicy(max_attempts=5))
        async def generate_invoice(ctx, data): ...
    """

    def __init__(self) -> None:
        self._configs: dict[str, HandlerConfig] = {}

    def register(self, config: HandlerConfig) -> HandlerConfig:
        if config.name in self._configs:
            raise DuplicateHandlerError(config.name)
        self._configs[config.name] = config
        return config

    def handler(
        self,
        name: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: timedelta | None = DEFAULT_TIMEOUT,
        dead_letter: str | None = None,
    ) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            self.register(
                HandlerConfig(
                    name=name,
                    handler=fn,
                    retry=retry or RetryPolicy(),
                    timeout=timeout,
                    dead_letter=dead_letter,
                )
            )
            return fn

        return decorate

    def get(self, name: str) -> HandlerConfig:
        try:
            return self._configs[name]
        except KeyError:
            raise UnknownJobError(name, list(self._configs)) from None

    def names(self) -> list[str]:
        return sorted(self._configs)

    def __contains__(self, name: object) -> bool:
        return name in self._configs

    def __iter__(self) -> Iterator[HandlerConfig]:
        return iter(self._configs.values())

    def __len__(self) -> int:
        return len(self._configs)


def load_registry(spec: str) -> HandlerRegistry:
    """Imports `package.module:attribute` and returns the HandlerRegistry it names.
    Raises ValueError with a message that names the spec."""
    import importlib

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--handlers: expected package.module:registry, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--handlers: cannot import {module_name!r}: {exc}") from None
    registry = getattr(module, attribute, None)
    if not isinstance(registry, HandlerRegistry):
        found = type(registry).__name__ if registry is not None else "nothing"
        raise ValueError(f"--handlers: {spec!r} is {found}, not a HandlerRegistry")
    if not len(registry):
        raise ValueError(f"--handlers: {spec!r} has no handlers registered")
    return registry
