"""The exporter-toolkit web configuration (`--web.config.file`): TLS, client certificates and
basic auth on a real `jobsight serve`, scraped by the real Prometheus over TLS with basic auth
and a client certificate; the probes stay open; wrong passwords and missing client certificates
are refused; mistakes in the file are one line each (issue 17)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import trustme
import yaml

from jobsight.devstack.localstack import free_port
from jobsight.settings import SettingError
from jobsight.sidecar.webconfig import parse_web_config
from tests.support.processes import jobsight
from tests.support.sidecar import SidecarProcess
from tests.support.tools import require_tool
from tests.support.waiting import eventually

PASSWORD = "scrape-Pa55"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write_tls(ca: trustme.CA, folder: Path) -> dict[str, Path]:
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("prometheus@example.test")
    paths = {name: folder / f"{name}.pem" for name in
             ("ca", "server-cert", "server-key", "client-cert", "client-key")}  # fmt: skip
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["server-cert"]))
    server.private_key_pem.write_to_path(str(paths["server-key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client-cert"]))
    client.private_key_pem.write_to_path(str(paths["client-key"]))
    return paths


def web_config(folder: Path, auth: str) -> Path:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    doc = {
        "tls_server_config": {"cert_file": "server-cert.pem", "key_file": "server-key.pem",
                              "client_auth_type": auth, "client_ca_file": "ca.pem"},
        "basic_auth_users": {"prometheus": hashed.replace("$2b$", "$2y$")},  # htpasswd's form
        "http_server_config": {"headers": {"Strict-Transport-Security": "max-age=31536000"}},
    }  # fmt: skip
    path = folder / "web.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def client_context(paths: dict[str, Path], with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(paths["ca"]))
    if with_cert:
        context.load_cert_chain(str(paths["client-cert"]), str(paths["client-key"]))
    return context


async def get(url: str, context: ssl.SSLContext, password: str | None = None) -> int:
    headers = {}
    if password is not None:
        token = base64.b64encode(f"prometheus:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(url, ssl=context, headers=headers) as response:
            await response.read()
            return response.status


async def test_tls_basic_auth_and_client_certificates(
    migrated_db: str, tmp_path: Path, ca: trustme.CA
) -> None:
    paths = write_tls(ca, tmp_path)
    config = web_config(tmp_path, "RequireAndVerifyClientCert")
    sidecar = SidecarProcess(migrated_db, tmp_path, JOBSIGHT_WEB_CONFIG_FILE=str(config))
    sidecar.start()
    base = f"https://127.0.0.1:{sidecar.port}"
    with_cert = client_context(paths, with_cert=True)
    try:

        async def up() -> bool:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                return await get(f"{base}/livez", with_cert) == 200
            return False

        await eventually(up, 30, "the sidecar over TLS")
        assert await get(f"{base}/readyz", with_cert) in (200, 503)  # open: no user needed
        assert await get(f"{base}/metrics", with_cert) == 401
        assert await get(f"{base}/metrics", with_cert, "wrong") == 401
        assert await get(f"{base}/", with_cert, "wrong") == 401
        assert await get(f"{base}/metrics", with_cert, PASSWORD) == 200
        assert await get(f"{base}/verdict", with_cert, PASSWORD) == 200
        without_cert = client_context(paths, with_cert=False)
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, OSError)):
            await get(f"{base}/livez", without_cert)
        plain = f"http://127.0.0.1:{sidecar.port}/livez"
        with pytest.raises((aiohttp.ClientError, OSError)):
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
                async with s.get(plain) as response:
                    assert response.status != 200
    finally:
        sidecar.stop()


async def test_real_prometheus_scrapes_over_tls_with_basic_auth(
    migrated_db: str, tmp_path: Path, ca: trustme.CA
) -> None:
    require_tool(shutil.which("prometheus") is not None, "prometheus (Debian package)")
    paths = write_tls(ca, tmp_path)
    config = web_config(tmp_path, "RequireAndVerifyClientCert")
    sidecar = SidecarProcess(migrated_db, tmp_path, JOBSIGHT_WEB_CONFIG_FILE=str(config))
    prom_port = free_port()
    jobs = []
    for name, password in (("jobsight", PASSWORD), ("wrong-password", "nope")):
        jobs.append({
            "job_name": name, "scheme": "https", "scrape_interval": "1s",
            "basic_auth": {"username": "prometheus", "password": password},
            "tls_config": {"ca_file": str(paths["ca"]), "cert_file": str(paths["client-cert"]),
                           "key_file": str(paths["client-key"])},
            "static_configs": [{"targets": [f"127.0.0.1:{sidecar.port}"]}],
        })  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": jobs}))
    sidecar.start()
    log = (tmp_path / "prometheus.log").open("wb")
    prom = subprocess.Popen(  # noqa: ASYNC220 - started once; the test then only waits
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        async def health() -> dict[str, str]:
            url = f"http://127.0.0.1:{prom_port}/api/v1/targets"
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
                    async with s.get(url) as response:
                        body = await response.json()
                return {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}
            return {}

        async def judged() -> bool:
            return await health() == {"jobsight": "up", "wrong-password": "down"}

        await eventually(judged, 60, "Prometheus scraping over TLS with basic auth")
    finally:
        prom.terminate()
        await asyncio.to_thread(prom.wait, 20)
        log.close()
        sidecar.stop()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"tls_server_config": {"cert_file": "a"}}, "needs cert_file and key_file"),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_auth_type": "RequireAnyClientCert",
                }
            },
            "client_auth_type 'RequireAnyClientCert' is not supported",
        ),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "cipher_suites": []}},
            "cipher_suites is not supported by jobsight",
        ),
        ({"basic_auth_users": {"bob": "plain-text"}}, "basic_auth_users.bob must be a bcrypt"),
        ({"basic_auth": {}}, "unknown key 'basic_auth'"),
        ({"http_server_config": {"http2": True}}, "http_server_config.http2 is not supported"),
    ],
)
def test_mistakes_in_the_file_are_named(doc: dict, message: str) -> None:
    with pytest.raises(SettingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_web_config(doc, "web.yml")


def test_serve_refuses_a_broken_file_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "web.yml"
    broken.write_text("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n")
    done = jobsight(
        "serve", "--web.config.file", str(broken),
        env={"DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db", "JOBSIGHT_PORT": str(free_port())},
    )  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot load the TLS files" in done.stderr
