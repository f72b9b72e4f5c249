"""The poller: runs each source on its own interval while this sidecar leads, and serves the
leader's published state while it follows.

Leader, per source, in a loop that never overlaps itself:
    poll (with JOBSIGHT_POLL_TIMEOUT) -> store the snapshot and status -> adopt them.
A snapshot is adopted only once stored, so what every sidecar serves is what a next leader
resumes from: counters neither double nor skip across leader changes. A failed poll keeps the last
good snapshot and marks the source down with its last success time.

Follower: every leader-check interval, reads the published state; when that fails, keeps the last
state and marks the sources down (the data behind them can no longer be vouched for).

Both: after each change of the state, and every EVALUATE_EVERY seconds (so hold times run on the
clock), the verdicts are evaluated and stored in the state. Readers only read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from jobsight.health.verdict import Evaluator, Verdict, unheld_verdict
from jobsight.settings import SidecarSettings
from jobsight.sidecar import state_store
from jobsight.sidecar.leadership import Leadership, NotLeader
from jobsight.sources.base import PollContext, Source
from jobsight.sources.status import SourceStatus, SourceView, UnsupportedSource, describe

log = logging.getLogger(__name__)
EVALUATE_EVERY = 1.0  # seconds: a held trigger state changes at most this late


@dataclass
class ReloadStatus:
    """The last reload of the settings (the start counts as one, as Prometheus's does)."""

    successful: bool = True
    success_at: float = field(default_factory=time.time)


@dataclass
class SidecarState:
    """Everything the collector and the HTTP handlers read; written only by the poller (and the
    settings by a reload, through Poller.reconfigure)."""

    views: dict[str, SourceView] = field(default_factory=dict)
    settings: SidecarSettings = field(default_factory=SidecarSettings)  # the ones in force
    reload: ReloadStatus = field(default_factory=ReloadStatus)
    leader: bool = False
    leader_info: dict[str, Any] | None = None
    state_read: SourceStatus = field(default_factory=SourceStatus)  # follower's reads
    started_at: float = field(default_factory=time.time)
    version: int = 0  # bumped on every change, so a rendering can be reused until the next
    verdicts: dict[str | None, Verdict] = field(default_factory=dict)  # global (None), versions

    def touch(self) -> None:
        self.version += 1

    def verdict(self, settings: SidecarSettings, version: str | None = None) -> Verdict:
        """The stored verdict of a scope. A version the poller does not evaluate (no finished
        jobs in the window) is measured as it is now, holding nothing."""
        stored = self.verdicts.get(version)
        if stored is not None:
            return stored
        return unheld_verdict(settings, self.views, time.time(), version, self.leader)

    @property
    def first_poll_done(self) -> bool:
        return any(v.status is not None and v.status.last_attempt for v in self.views.values())


class Poller:
    def __init__(
        self,
        settings: SidecarSettings,
        sources: dict[str, Source[Any]],
        leadership: Leadership,
        pool: asyncpg.Pool,
    ) -> None:
        self.sources = sources
        self.leadership = leadership
        self.pool = pool
        self.state = SidecarState(views={name: SourceView() for name in sources}, settings=settings)
        self.evaluator = Evaluator(settings)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finish = asyncio.Event()  # set on a clean stop: polls in flight finish first
        self._clients: dict[str, Any] = {}
        self._types = {name: source.snapshot_type for name, source in sources.items()}

    @property
    def settings(self) -> SidecarSettings:
        """The settings in force: read afresh at each use, so a reload reaches every loop."""
        return self.state.settings

    def reconfigure(self, settings: SidecarSettings, triggers_changed: set[str]) -> None:
        """Puts reloaded settings in force at once (no await in between: nothing sees half of
        them). Held trigger states are kept but for the triggers whose settings changed."""
        self.state.settings = settings
        self.evaluator.reconfigure(settings, triggers_changed)
        self.changed()

    def changed(self) -> None:
        """Marks the state changed and evaluates the verdicts on it."""
        self.state.touch()
        self.evaluate()

    def evaluate(self) -> None:
        state = self.state
        state.verdicts = self.evaluator.evaluate(state.views, time.time(), state.leader)

    async def _keep_evaluating(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.evaluate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), EVALUATE_EVERY)

    async def run(self, stop: asyncio.Event) -> None:
        ticker = asyncio.create_task(self._keep_evaluating(stop), name="evaluate")
        ticker.add_done_callback(_report_crash)
        try:
            while not stop.is_set():
                leading = await self.leadership.refresh()
                if leading and not self._tasks:
                    await self._lead()
                elif not leading and self._tasks:
                    await self._follow()
                if not leading:
                    await self._read_published()
                await self._read_leader_info()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.leader_check_interval)
        finally:
            ticker.cancel()
            await self._stop_tasks(graceful=True)
            await close_clients(self._clients)
            await self.leadership.resign()
            self.state.leader = False
            self.changed()

    async def _lead(self) -> None:
        try:
            stored = await state_store.load(self.pool, self.settings.instance, self._types)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            log.warning("cannot load the stored state; not leading yet: %s", exc)
            await self.leadership.resign()
            return
        for name in self.sources:  # resume from what the previous leader stored
            if name in stored and stored[name].snapshot is not None:
                self.state.views[name] = SourceView(
                    stored[name].snapshot, self.state.views[name].status
                )
        self.state.leader = True
        self.changed()
        for name in self.sources:
            task = asyncio.create_task(self._source_loop(name), name=f"poll-{name}")
            task.add_done_callback(_report_crash)
            self._tasks[name] = task

    async def _follow(self) -> None:
        log.info("now a follower")
        await self._stop_tasks()
        self.state.leader = False
        self.changed()

    async def _stop_tasks(self, graceful: bool = False) -> None:
        """Graceful (a clean stop): polls in flight finish and store their results, so an export
        that reached the collector is not sent again by the next leader."""
        if graceful and self._tasks:
            self._finish.set()
            await asyncio.wait(self._tasks.values(), timeout=self.settings.poll_timeout + 1)
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _source_loop(self, name: str) -> None:
        source = self.sources[name]
        while True:
            began, wall = time.monotonic(), time.time()
            view = self.state.views[name]
            previous_status = view.status or SourceStatus()
            ctx = PollContext(self.settings, self.pool, view.snapshot, self._clients)
            snapshot = None
            try:
                snapshot = await asyncio.wait_for(source.poll(ctx), self.settings.poll_timeout)
                status = SourceStatus(True, time.time(), wall, time.monotonic() - began)
                if previous_status.error:
                    log.info("source %s is up again", name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a source's failure is reported, never fatal
                status = SourceStatus(
                    False,
                    previous_status.last_success,
                    wall,
                    time.monotonic() - began,
                    describe(exc),
                    unsupported=isinstance(exc, UnsupportedSource),
                )
                if status.error != previous_status.error:  # said once, not at every poll
                    what = "unsupported, left out" if status.unsupported else "down"
                    log.warning("source %s is %s: %s", name, what, status.error)
            try:
                await state_store.save(
                    self.leadership, self.settings.instance, name, snapshot, status
                )
            except (NotLeader, asyncpg.PostgresError, OSError, TimeoutError) as exc:
                # Not stored, so not served: a next leader would not resume from it.
                snapshot = None
                status = SourceStatus(
                    False,
                    previous_status.last_success,
                    wall,
                    time.monotonic() - began,
                    f"cannot store the state: {describe(exc)}",
                )
            self.state.views[name] = SourceView(
                snapshot if snapshot is not None else view.snapshot, status
            )
            self.changed()
            with contextlib.suppress(TimeoutError):
                pause = max(0.0, self.settings.interval(name) - (time.monotonic() - began))
                await asyncio.wait_for(self._finish.wait(), pause)
            if self._finish.is_set():
                return

    async def _read_published(self) -> None:
        wall, began = time.time(), time.monotonic()
        try:
            async with asyncio.timeout(self.settings.poll_timeout):
                stored = await state_store.load(self.pool, self.settings.instance, self._types)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            error = f"cannot read the leader's state: {describe(exc)}"
            self.state.state_read = SourceStatus(
                False, self.state.state_read.last_success, wall, time.monotonic() - began, error
            )
            for name, view in self.state.views.items():
                last = view.status.last_success if view.status else None
                self.state.views[name] = SourceView(
                    view.snapshot, SourceStatus(False, last, wall, None, error)
                )
            self.changed()
            return
        self.state.state_read = SourceStatus(True, time.time(), wall, time.monotonic() - began)
        for name in self.sources:
            if name in stored:
                self.state.views[name] = stored[name]
        self.changed()

    async def _read_leader_info(self) -> None:
        try:
            async with asyncio.timeout(self.settings.poll_timeout):
                self.state.leader_info = await state_store.leader_info(
                    self.pool, self.settings.instance
                )
        except (asyncpg.PostgresError, OSError, TimeoutError):
            pass  # shown as unknown on the status page; the sources carry the real status


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %s", task.get_name(), describe(task.exception()))  # type: ignore[arg-type]


async def close_clients(clients: dict[str, Any]) -> None:
    """Closes the sources' kept clients that hold connections (the temporal source's HTTP
    session); one that fails to close is only logged."""
    for name, client in list(clients.items()):
        close = getattr(client, "close", None)
        if close is not None and inspect.iscoroutinefunction(close):
            try:
                await close()
            except Exception as exc:
                log.warning("closing the %s client: %s", name, exc)
    clients.clear()
