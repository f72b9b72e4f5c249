"""A secured Temporal, for real: the dev server behind a TLS-terminating proxy (ALPN h2, a test
CA, client certificates required). A producer, a `jobsight worker` process and the sidecar's
Temporal source all work through it with the same settings; a wrong CA, a missing client
certificate or a wrong server name fails with one line naming the setting to fix; the API key
never shows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from jobsight.runners import HandlerRegistry
from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings, TemporalUnavailableError
from jobsight.runners.temporal_access import ENV_NAMES, TemporalAccess
from jobsight.settings import SidecarSettings
from jobsight.sources import temporal as temporal_source
from tests.support.handlers.temporal import registry
from tests.support.processes import jobsight, start_jobsight
from tests.support.proxy import Pems, Proxy, issue
from tests.support.waiting import eventually

TENANT = uuid.UUID("00000000-0000-4000-8000-00000000071a")


@pytest.fixture
def secured(temporal_address: str, tmp_path: Path) -> Iterator[tuple[str, Pems, Pems]]:
    """The proxy's address, the PEMs of its CA (with a client certificate it signed) and those
    of an unrelated CA."""
    ca, pems = issue(tmp_path / "good")
    _, strangers = issue(tmp_path / "other")
    proxy = Proxy(temporal_address, ca)
    address = proxy.start()
    yield address, pems, strangers
    proxy.stop()


def _mtls(pems: Pems, **changes: str) -> TemporalAccess:
    values = {"tls_ca": str(pems.ca), "tls_cert": str(pems.client_cert),
              "tls_key": str(pems.client_key), **changes}  # fmt: skip
    return TemporalAccess(**values)


def _env(access: TemporalAccess, address: str) -> dict[str, str]:
    env = {var: str(getattr(access, name)) for name, var in ENV_NAMES.items() if name != "tls"}
    return {**env, "TEMPORAL_TLS": "true", "TEMPORAL_ADDRESS": address}


async def test_producer_and_worker_process_through_mutual_tls(
    secured: tuple[str, Pems, Pems], migrated_db: str, conn: asyncpg.Connection
) -> None:
    address, pems, _ = secured
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    access = _mtls(pems, api_key="never-printed-0451")
    producer = TemporalJobRunner(migrated_db, registry, TemporalSettings(
        address=address, task_queue=queue, access=access), work=False)  # fmt: skip
    worker = start_jobsight(
        "worker", "--runner", "temporal", "--handlers", "tests.support.handlers.temporal:registry",
        "--task-queue", queue, "--database-url", migrated_db, env=_env(access, address),
    )  # fmt: skip
    try:
        job = await producer.schedule_job("slow-import", {"seconds": 0.2}, tenant=TENANT)
        done = "SELECT status = 'completed' FROM jobs WHERE job_id = $1"
        await eventually(lambda: conn.fetchval(done, job.job_id), 60, "job done through TLS")
    finally:
        worker.terminate()
        worker.wait(30)
        await producer.stop()
    assert "never-printed-0451" not in repr(access) + repr(producer.settings)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong CA", "TEMPORAL_TLS_CA: Temporal at {address} presents a certificate not signed by "
                     "the CA in {other_ca}"),
        ("no client certificate", "TEMPORAL_TLS: Temporal at {address} ended the TLS session (it "
                                  "may require a client certificate"),
        ("wrong server name", "TEMPORAL_TLS_SERVER_NAME: Temporal at {address} presents a "
                              "certificate that is not valid for 'temporal.example'"),
        ("plaintext", "TEMPORAL_TLS: Temporal at {address} closed the connection; if it expects "
                      "TLS, set TEMPORAL_TLS=true"),
    ],
)  # fmt: skip
async def test_a_refused_connection_says_what_to_fix(
    secured: tuple[str, Pems, Pems], migrated_db: str, case: str, expected: str
) -> None:
    address, pems, other = secured
    access = {
        "wrong CA": _mtls(pems, tls_ca=str(other.ca)),
        "no client certificate": TemporalAccess(tls_ca=str(pems.ca)),
        "wrong server name": _mtls(pems, tls_server_name="temporal.example"),
        "plaintext": TemporalAccess(),
    }[case]
    line = expected.format(address=address, other_ca=other.ca)
    runner = TemporalJobRunner(migrated_db, HandlerRegistry(), TemporalSettings(
        address=address, access=access), work=False)  # fmt: skip
    with pytest.raises(TemporalUnavailableError) as refused:
        await runner.client()
    await runner.stop()
    assert str(refused.value).startswith(line) and "\n" not in str(refused.value)
    if case == "wrong CA":  # the worker command says the same, in one line, exit 2
        done = jobsight("worker", "--runner", "temporal", "--handlers",
                        "tests.support.handlers.temporal:registry", "--database-url", migrated_db,
                        env=_env(access, address), timeout=60)  # fmt: skip
        assert done.returncode == 2, done.stderr[-3000:]
        assert done.stderr.strip().splitlines() == [f"jobsight: {refused.value!s}"]


async def test_sidecar_reads_temporal_through_mutual_tls(secured: tuple[str, Pems, Pems]) -> None:
    address, pems, other = secured
    settings = SidecarSettings(
        database_url="postgresql://x@localhost/db", temporal_address=address,
        temporal_tls_ca=str(pems.ca), temporal_tls_cert=str(pems.client_cert),
        temporal_tls_key=str(pems.client_key),
    )  # fmt: skip
    api = await temporal_source.connect(settings)
    assert int((await api.count("", 5.0)).get("count") or 0) >= 0
    wrong = SidecarSettings(
        database_url="postgresql://x@localhost/db", temporal_address=address,
        temporal_tls_ca=str(other.ca), temporal_tls_cert=str(pems.client_cert),
        temporal_tls_key=str(pems.client_key),
    )  # fmt: skip
    with pytest.raises(ConnectionError, match=r"^TEMPORAL_TLS_CA: "):
        await temporal_source.connect(wrong)


@pytest.mark.parametrize(
    "case", ["mutual TLS", "wrong CA", "wrong server name", "no client certificate"]
)
async def test_sidecar_reads_the_http_api_through_mutual_tls(
    temporal_http_address: str, tmp_path: Path, case: str
) -> None:
    """The HTTP API behind the same kind of TLS proxy: read with the same TLS settings, the API
    key sent but never shown; each wrong setting fails the poll in one line naming it."""
    from jobsight.sidecar.poller import close_clients
    from jobsight.sources.base import PollContext
    from jobsight.sources.temporal_api import TemporalApiError

    ca, pems = issue(tmp_path / "good")
    _, strangers = issue(tmp_path / "other")
    proxy = Proxy(temporal_http_address, ca)
    address = proxy.start()
    secret = "never-printed-7243"
    files = {"temporal_tls_ca": str(pems.ca), "temporal_tls_cert": str(pems.client_cert),
             "temporal_tls_key": str(pems.client_key)}  # fmt: skip
    if case == "wrong CA":
        files["temporal_tls_ca"] = str(strangers.ca)
    elif case == "wrong server name":
        files["temporal_tls_server_name"] = "temporal.elsewhere.test"
    elif case == "no client certificate":
        del files["temporal_tls_cert"], files["temporal_tls_key"]
    settings = SidecarSettings(
        database_url="postgresql://x@localhost/db", temporal_http_address=address,
        temporal_api_key=secret, temporal_task_queues=("tls-http",), poll_timeout=5.0, **files,
    )  # fmt: skip
    clients: dict[str, object] = {}
    try:
        if case == "mutual TLS":
            snap = await temporal_source.SOURCE.poll(PollContext(settings, None, None, clients))
            assert snap.task_queues[0].task_queue == "tls-http" and snap.workflows["running"] >= 0
            assert secret not in repr(clients["temporal"])
            return
        with pytest.raises(TemporalApiError) as refused:
            await temporal_source.SOURCE.poll(PollContext(settings, None, None, clients))
        expected = {"wrong CA": "TEMPORAL_TLS_CA: ", "no client certificate": "TEMPORAL_TLS: ",
                    "wrong server name": "TEMPORAL_TLS_SERVER_NAME: "}[case]  # fmt: skip
        assert str(refused.value).startswith(expected), refused.value
        assert len(str(refused.value).splitlines()) == 1 and secret not in str(refused.value)
    finally:
        await close_clients(clients)  # type: ignore[arg-type]
        proxy.stop()
