"""A registry with no handlers, for the CLI test."""

from jobsight.runners import HandlerRegistry

registry = HandlerRegistry()
