"""A metric's description, declared once beside the source that fills it, and the helpers that
turn descriptions plus values into prometheus_client metric families. The metrics reference
(docs/metrics.md), the dashboards and the alert rules all read these descriptions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Exemplar

KINDS = ("counter", "gauge", "histogram")

# The bounds (seconds) of the jobs' run-time and wait histograms; objectives' start times are
# one of them (health/objectives.py).
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed; counters end in _total
    kind: str
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if not self.name.startswith("jobsight_"):
            raise ValueError(f"{self.name}: metric names start with jobsight_")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: _total is for counters, and only for them")

    def family(self) -> Metric:
        if self.kind == "histogram":
            return self.histogram_family()
        return self.scalar_family()

    def scalar_family(self) -> CounterMetricFamily | GaugeMetricFamily:
        if self.kind == "counter":
            return CounterMetricFamily(
                self.name.removesuffix("_total"), self.help, labels=self.labels
            )
        if self.kind == "gauge":
            return GaugeMetricFamily(self.name, self.help, labels=self.labels)
        raise ValueError(f"{self.name}: a {self.kind} has no single values")

    def histogram_family(self) -> HistogramMetricFamily:
        if self.kind != "histogram":
            raise ValueError(f"{self.name}: a {self.kind}, not a histogram")
        return HistogramMetricFamily(self.name, self.help, labels=self.labels)


def samples(spec: MetricSpec, rows: Iterable[tuple[Sequence[str], float]]) -> Metric:
    """A family of (label values, value) rows."""
    family = spec.scalar_family()
    for labels, value in rows:
        family.add_metric(list(labels), value)
    return family


def single(spec: MetricSpec, value: float | None) -> Metric:
    family = spec.scalar_family()
    if value is not None:
        family.add_metric([], value)
    return family


def histogram(
    spec: MetricSpec,
    bounds: Sequence[float],
    rows: Iterable[tuple[Sequence[str], Sequence[int], float, Sequence[Exemplar | None]]],
) -> Metric:
    """Rows of (labels, per-bucket counts (not cumulative, + the +Inf bucket), sum, exemplars)."""
    family = spec.histogram_family()
    for labels, counts, total, exemplars in rows:
        buckets: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
        running = 0
        for bound, count, exemplar in zip([*bounds, float("inf")], counts, exemplars, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else le_label(bound)
            buckets.append((le, running, exemplar) if exemplar else (le, running))
        family.add_metric(list(labels), buckets, total)
    return family


def le_label(bound: float) -> str:
    return repr(float(bound))
