"""Metric families as plain dictionaries, for assertions: from a source's render, or from the
text a real /metrics answered."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from jobsight.settings import SidecarSettings

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def by_sample(families: Iterable[Metric]) -> Samples:
    """metric sample name -> {sorted label items: value}."""
    out: Samples = {}
    for family in families:
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def rendered(source: Any, snapshot: Any, settings: SidecarSettings) -> Samples:
    return by_sample(source.render(snapshot, settings))


def parsed(text: str) -> Samples:
    return by_sample(text_string_to_metric_families(text))
