"""Slow and too many clients: every connection of the sidecar's HTTP server goes through a guard.

- A client has JOBSIGHT_REQUEST_TIMEOUT from the first byte of a request (or from connecting) to
  deliver the whole request head; a connection still short of it then is closed. (aiohttp itself
  times out idle keep-alive connections, not a request that trickles in.)
- At most a fixed number of connections are open (JOBSIGHT_MAX_CONNECTIONS, lowered to fit the
  process's file limit). When full, the connection that has waited longest for a request head is
  closed to make room, so a probe of /livez still gets in while slow clients hold the rest; only
  when every connection is busy with a request is the newcomer refused.
- Refusals and closings are counted and logged once per interval, never a line each.

The guard wraps the protocol aiohttp's server makes for each connection (`runner.server()`), and
tells a finished request head from aiohttp's count of parsed requests.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
RESERVED_FILES = 64  # files kept for the database pools, the state store, logs and the rest
LOG_EVERY_S = 60.0


def connection_limit(wanted: int) -> int:
    """`wanted`, lowered so that open connections never exhaust the file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FILES))


@dataclass
class ConnectionGuard:
    limit: int
    request_timeout: float
    open: dict[GuardedProtocol, None] = field(default_factory=dict)  # in order of arrival
    waiting: dict[GuardedProtocol, None] = field(default_factory=dict)  # heads pending, oldest 1st
    refused: int = 0  # turned away: every connection busy with a request
    evicted: int = 0  # closed to make room, waiting longest for a request head
    too_slow: int = 0  # closed: no whole request head within the timeout

    def admit(self, newcomer: GuardedProtocol) -> bool:
        if len(self.open) >= self.limit:
            if not self.waiting:
                self.refused += 1
                return False
            oldest = next(iter(self.waiting))
            self.evicted += 1
            oldest.close()
        self.open[newcomer] = None
        return True

    def release(self, protocol: GuardedProtocol) -> None:
        self.open.pop(protocol, None)
        self.waiting.pop(protocol, None)

    def report(self) -> tuple[int, int, int]:
        """(refused, evicted, too slow) since the previous report; resets them."""
        counts = (self.refused, self.evicted, self.too_slow)
        self.refused = self.evicted = self.too_slow = 0
        return counts


class GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol for the connection, and times its requests."""

    def __init__(self, inner: Any, guard: ConnectionGuard, loop: asyncio.AbstractEventLoop):
        self.inner = inner
        self.guard = guard
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.guard.admit(self):
            transport.abort()  # type: ignore[attr-defined]
            return
        self.admitted = True
        self.inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self._requests()
        self.inner.data_received(data)
        if self._requests() != before:
            self._disarm()  # a whole head arrived
        elif data and self.deadline is None:
            self._arm()  # the first byte of the next request starts its clock

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self.guard.release(self)
        if self.admitted:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def close(self) -> None:
        self._disarm()
        self.guard.release(self)
        if self.transport is not None:
            self.transport.abort()

    def _requests(self) -> int:
        return int(getattr(self.inner, "_request_count", 0))

    def _arm(self) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(self.guard.request_timeout, self._too_slow)
        self.guard.waiting[self] = None

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.guard.waiting.pop(self, None)

    def _too_slow(self) -> None:
        self.deadline = None
        self.guard.too_slow += 1
        self.close()


def protocol_factory(
    make_inner: Callable[[], Any], guard: ConnectionGuard
) -> Callable[[], GuardedProtocol]:
    loop = asyncio.get_running_loop()
    return lambda: GuardedProtocol(make_inner(), guard, loop)


async def report_every(guard: ConnectionGuard, interval: float = LOG_EVERY_S) -> None:
    """Logs what the guard did, at most once per interval."""
    while True:
        await asyncio.sleep(interval)
        refused, evicted, too_slow = guard.report()
        if refused or evicted or too_slow:
            log.warning(
                "http: in the last %.0f s, %d connection(s) closed for a request head slower than "
                "%.0f s, %d closed to make room and %d refused (limit %d open)",
                interval,
                too_slow,
                guard.request_timeout,
                evicted,
                refused,
                guard.limit,
            )


class QuietLoopErrors:
    """An event-loop exception handler that logs each kind of error once per interval with a
    count, instead of a traceback each time (accept() failing under a file limit, say)."""

    def __init__(self, interval: float = LOG_EVERY_S) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "event loop error"))
        exc = context.get("exception")
        kind = f"{message}: {type(exc).__name__}" if exc is not None else message
        now = loop.time()
        if now - self.last.get(kind, -self.interval) < self.interval:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return
        repeats = self.suppressed.pop(kind, 0)
        self.last[kind] = now
        more = f" ({repeats} more like it since the last report)" if repeats else ""
        log.error("%s%s%s", kind, f" {exc}" if exc is not None else "", more)
