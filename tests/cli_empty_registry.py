"""A registry with no handlers, for the CLI test."""

from runners import HandlerRegistry

registry = HandlerRegistry()
