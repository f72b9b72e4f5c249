"""The collector renders the stored state: exemplars, parseable text."""

from __future__ import annotations

from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from jobsight.sidecar.collector import SidecarCollector, registry_for
from jobsight.sidecar.poller import SidecarState
from jobsight.sources import jobs
from jobsight.sources.status import SourceStatus, SourceView
from tests.support.canned import FINISHED_AT as T0
from tests.support.canned import PLAIN as SETTINGS_OBJ
from tests.support.canned import finished_rows as finished


def test_histograms_carry_the_job_trace_id_as_exemplar():
    snap = jobs.build_snapshot(None, finished(1, run_s=3.0), [], T0, T0, 10)
    state = SidecarState(views={"jobs": SourceView(snap, SourceStatus(True, 1.0))}, leader=True,
                         settings=SETTINGS_OBJ)  # fmt: skip
    registry = registry_for(SidecarCollector(state, {"jobs": jobs.SOURCE}, "9"))
    text = openmetrics(registry).decode()
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("jobsight_job_duration_seconds_bucket") and 'le="5.0"' in x
    )
    assert '# {trace_id="00000000000040008000000000000000"} 3.0' in line


def test_prometheus_text_output_parses():
    snap = jobs.build_snapshot(None, finished(2), [], T0, T0, 10)
    state = SidecarState(
        views={"jobs": SourceView(snap, SourceStatus(True, 1.0, 1.0, 0.1))},
        leader=True,
        settings=SETTINGS_OBJ,
    )
    from prometheus_client.exposition import generate_latest

    text = generate_latest(
        registry_for(SidecarCollector(state, {"jobs": jobs.SOURCE}, "9"))
    ).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"jobsight_leader", "jobsight_source_up", "jobsight_jobs_completed"} <= names
