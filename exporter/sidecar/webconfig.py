"""The Prometheus exporters' web configuration file (`--web.config.file`, the exporter-toolkit
format), so operators lock the sidecar down the way they lock down every exporter:

    tls_server_config:
      cert_file: server.crt           # with key_file: serve HTTPS
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # mutual TLS (or VerifyClientCertIfGiven)
      client_ca_file: clients-ca.crt
      min_version: TLS12              # TLS12 (default) or TLS13; max_version likewise
    basic_auth_users:                 # user: bcrypt hash (htpasswd -nBC 10 user)
      prometheus: $2y$10$...
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}

With basic_auth_users, every path but /livez and /readyz (the kubelet's probes) needs a user.
Keys of the format that jobsight does not implement are refused by name, never ignored.
Parsing is pure (`parse_web_config`); reading the files is `load_web_config`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from jobsight.settings import SettingError
from jobsight.settings.load import read_yaml_file

# Where the middleware leaves the authenticated user's name on a request.
USER = "jobsight_user"
OPEN_PATHS = ("/livez", "/readyz")  # and /readyz/<check>: probes need no credentials
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
            "max_version"}  # fmt: skip
NOT_IMPLEMENTED = {"cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
                   "client_allowed_sans", "cert", "key", "http2", "rate_limit"}  # fmt: skip
MAX_REMEMBERED = 1024  # credentials checked recently, kept so bcrypt runs once per password


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict, repr=False)  # user -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)


def parse_web_config(doc: Any, where: str) -> dict[str, Any]:
    """Checks the document's shape; returns its sections. Raises SettingError naming the key."""
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise SettingError(f"{where}: must be a mapping")
    known = {"tls_server_config", "basic_auth_users", "http_server_config"}
    for key in doc:
        if key not in known:
            raise SettingError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    tls = doc.get("tls_server_config") or {}
    for key in tls:
        if key in NOT_IMPLEMENTED:
            raise SettingError(f"{where}: tls_server_config.{key} is not supported by jobsight")
        if key not in TLS_KEYS:
            raise SettingError(f"{where}: unknown key tls_server_config.{key}")
    if tls and not (tls.get("cert_file") and tls.get("key_file")):
        raise SettingError(f"{where}: tls_server_config needs cert_file and key_file")
    auth = tls.get("client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH:
        raise SettingError(
            f"{where}: tls_server_config.client_auth_type {auth!r} is not supported "
            f"(choose {', '.join(CLIENT_AUTH)})"
        )
    if auth != "NoClientCert" and not tls.get("client_ca_file"):
        raise SettingError(f"{where}: client_auth_type {auth} needs client_ca_file")
    for key in ("min_version", "max_version"):
        if key in tls and tls[key] not in TLS_VERSIONS:
            raise SettingError(
                f"{where}: tls_server_config.{key} must be {' or '.join(TLS_VERSIONS)}"
            )
    users = doc.get("basic_auth_users") or {}
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise SettingError(f"{where}: basic_auth_users.{user} must be a bcrypt hash")
    server = doc.get("http_server_config") or {}
    for key in server:
        if key != "headers":
            raise SettingError(f"{where}: http_server_config.{key} is not supported by jobsight")
    return {"tls": tls, "users": users, "headers": server.get("headers") or {}}


def tls_context(tls: Mapping[str, Any], base: Path, where: str) -> ssl.SSLContext:
    def path(key: str) -> str:
        return str(base / str(tls[key]))  # relative to the file, as exporter-toolkit does

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.get("min_version", "TLS12")]
    if "max_version" in tls:
        context.maximum_version = TLS_VERSIONS[tls["max_version"]]
    try:
        context.load_cert_chain(path("cert_file"), path("key_file"))
        context.verify_mode = CLIENT_AUTH[tls.get("client_auth_type", "NoClientCert")]
        if tls.get("client_ca_file"):
            context.load_verify_locations(path("client_ca_file"))
    except (OSError, ssl.SSLError) as exc:
        raise SettingError(f"{where}: cannot load the TLS files: {exc}") from None
    return context


def load_web_config(path: str) -> WebConfig:
    where = f"JOBSIGHT_WEB_CONFIG_FILE: {path}"
    doc = read_yaml_file(path, "JOBSIGHT_WEB_CONFIG_FILE")
    sections = parse_web_config(doc, where)
    tls = sections.get("tls")
    return WebConfig(
        tls_context(tls, Path(path).parent, where) if tls else None,
        {user: hashed.encode() for user, hashed in (sections.get("users") or {}).items()},
        {str(k): str(v) for k, v in (sections.get("headers") or {}).items()},
    )


class BasicAuth:
    """Checks `Authorization: Basic` against the bcrypt hashes. A bcrypt check is deliberately
    slow, so a credential seen recently is remembered as a keyed digest (never in clear)."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self.users = dict(users)
        self.key = hashlib.sha256(b"".join(sorted(self.users.values()))).digest()
        self.remembered: dict[bytes, bool] = {}

    async def user(self, header: str | None) -> str | None:
        """The user the header proves, or None."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        digest = hmac.new(self.key, f"{user}\0{password}".encode(), "sha256").digest()
        known = self.remembered.get(digest)
        if known is None:
            import bcrypt  # only a sidecar with basic auth users loads it

            hashed = self.users.get(user)
            known = hashed is not None and await asyncio.to_thread(
                bcrypt.checkpw, password.encode(), hashed
            )
            if len(self.remembered) >= MAX_REMEMBERED:
                self.remembered.clear()
            self.remembered[digest] = known
        return user if known else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(auth: BasicAuth) -> Any:
    @web.middleware
    async def require_user(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS or path.startswith("/readyz/"):
            return await handler(request)
        user = await auth.user(request.headers.get("Authorization"))
        if user is not None:
            request[USER] = user
            return await handler(request)
        raise web.HTTPUnauthorized(
            text="authentication required\n",
            headers={"WWW-Authenticate": 'Basic realm="jobsight"'},
        )

    return require_user
