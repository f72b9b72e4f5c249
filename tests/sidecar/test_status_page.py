"""The status page says a shared outage once (issue 17): a database every source reads going
down is one message above the tables, not the same error on every row."""

from __future__ import annotations

from dataclasses import replace

from jobsight.health.verdict import Evaluator
from jobsight.sidecar import pages
from jobsight.sidecar.poller import SidecarState
from jobsight.sources.status import SourceStatus, SourceView
from tests.support.canned import BASE, NOW, views

REFUSED = "ConnectionRefusedError: [Errno 111] Connect call failed ('10.0.0.5', 5432)"


def page(state: SidecarState) -> str:
    verdicts = Evaluator(BASE).evaluate(state.views, NOW, leader=state.leader)
    return pages.render(verdicts[None], state, BASE, NOW)


def failing(view: SourceView, error: str) -> SourceView:
    return replace(view, status=SourceStatus(False, NOW - 300, NOW - 1, 5.0, error))


def test_a_database_outage_is_one_message() -> None:
    down = {name: failing(view, REFUSED) for name, view in views().items() if name != "temporal"}
    state = SidecarState(views={**views(), **down}, leader=True)
    html = page(state)
    assert html.count("Connect call failed") == 1 and 'id="outage"' in html
    assert html.count(">(the outage above)<") == len(down)  # each failing source row


def test_a_follower_that_cannot_read_the_leaders_state_says_so_once() -> None:
    state = SidecarState(views=views(), leader=False)
    state.state_read = SourceStatus(False, NOW - 60, NOW - 1, 5.0, REFUSED)
    assert page(state).count("Connect call failed") == 1


def test_different_errors_stay_on_their_rows() -> None:
    mixed = views()
    mixed["pgboss"] = failing(mixed["pgboss"], "pg-boss schema version 20 is older than 24")
    mixed["temporal"] = failing(mixed["temporal"], "Temporal unreachable at temporal:7233")
    html = page(SidecarState(views=mixed, leader=True))
    assert 'id="outage"' not in html
    assert "older than 24" in html and "unreachable at temporal" in html
