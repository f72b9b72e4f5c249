"""Metric descriptions follow Prometheus' naming conventions."""

from __future__ import annotations

import pytest

from jobsight.generators.metrics_doc import all_metrics
from jobsight.metric_spec import MetricSpec


def test_metric_names_follow_the_conventions():
    specs = all_metrics()
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    for spec in specs:
        assert (
            "tenant" not in spec.labels
            and "job_id" not in spec.labels
            and "type" not in (spec.labels)
        )
    with pytest.raises(ValueError):
        MetricSpec("jobsight_x", "counter", "no _total")
    with pytest.raises(ValueError):
        MetricSpec("jobsight_x_total", "gauge", "_total on a gauge")
    with pytest.raises(ValueError):
        MetricSpec("x", "gauge", "no prefix")
