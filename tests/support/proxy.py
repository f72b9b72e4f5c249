"""A TCP proxy for fault tests, on its own event loop in a thread (blocking test code cannot
stall it). With a CA it terminates TLS in front of a plaintext gRPC server (the Temporal dev
server), as a load balancer in front of a secured Temporal would: it offers ALPN h2, presents a
certificate from a test CA (trustme) and, for mutual TLS, requires a client certificate from
that CA. `blackhole()` stops forwarding in both directions without closing anything: a network
path that drops every packet."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from jobsight.devstack.ports import free_port


@dataclass
class Pems:
    """The PEM files a client needs: the CA, and a client certificate with its key."""

    ca: Path
    client_cert: Path
    client_key: Path


def issue(folder: Path, ca: trustme.CA | None = None) -> tuple[trustme.CA, Pems]:
    """A CA (new unless given) and a client certificate it signed, written under `folder`."""
    ca = ca or trustme.CA()
    folder.mkdir(parents=True, exist_ok=True)
    client = ca.issue_cert("jobsight-worker@example.test")
    pems = Pems(folder / "ca.pem", folder / "client.pem", folder / "client.key")
    ca.cert_pem.write_to_path(str(pems.ca))
    client.cert_chain_pems[0].write_to_path(str(pems.client_cert))
    client.private_key_pem.write_to_path(str(pems.client_key))
    return ca, pems


@dataclass
class Proxy:
    upstream: str  # host:port of the plaintext server
    ca: trustme.CA | None = None  # None: plain TCP
    require_client_cert: bool = True
    address: str = ""
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _flowing: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        context = None
        if self.ca is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            context.set_alpn_protocols(["h2"])
            if self.require_client_cert:
                context.verify_mode = ssl.CERT_REQUIRED
                self.ca.configure_trust(context)
        self._flowing.set()
        port = free_port()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", port, ssl=context), self._loop
        )
        self._server = started.result(10)
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.upstream.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, up_writer, self._flowing), _pipe(up_reader, writer, self._flowing)
        )

    def blackhole(self) -> None:
        """From now on nothing passes, either way, and nothing is closed."""
        self._flowing.clear()

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


async def _pipe(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, flowing: threading.Event
) -> None:
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
        while data := await source.read(65536):
            if not flowing.is_set():
                await asyncio.Event().wait()  # dropped, and held open forever
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(OSError, ssl.SSLError):
        sink.close()
