"""The handler registry: job names to handler configs, shared by every engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

from runners.errors import DuplicateHandlerError, UnknownJobError
from runners.interface import Handler, HandlerConfig, RetryPolicy

_DEFAULT_TIMEOUT = HandlerConfig.__dataclass_fields__["timeout"].default


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
        timeout: timedelta | None = _DEFAULT_TIMEOUT,
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
