"""How to reach a secured Temporal: TLS (the server's CA, a client certificate and key for mutual
TLS, the server name to verify) and an API key (Temporal Cloud). One object and one set of
environment names, used by the Temporal engine, `jobsight worker` and the sidecar alike."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobsight.runners.errors import ValidationError

# Setting -> environment variable (the sidecar's names).
ENV_NAMES = {
    "tls": "TEMPORAL_TLS",
    "tls_ca": "TEMPORAL_TLS_CA",
    "tls_cert": "TEMPORAL_TLS_CERT",
    "tls_key": "TEMPORAL_TLS_KEY",
    "tls_server_name": "TEMPORAL_TLS_SERVER_NAME",
    "api_key": "TEMPORAL_API_KEY",
}
# How the SDK words a connection the server ended right after it was made (a TLS server that
# wanted a client certificate, or that was spoken to in plaintext).
CLOSED_MARKS = ("close_notify", "UnexpectedEof", "connection closed", "BrokenPipe",
                "ConnectionReset", "Connection reset", "Canceled", "CERTIFICATE_REQUIRED",
                "Server disconnected")  # fmt: skip
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class TemporalAccess:
    """Everything empty: plaintext, no credentials (a local dev server). Any TLS file, a server
    name or an API key turns TLS on; without a CA file the system's trust store is used."""

    tls: bool = False
    tls_ca: str = ""  # PEM file: the CA that signed the server's certificate
    tls_cert: str = ""  # PEM file: this client's certificate (mutual TLS)
    tls_key: str = ""  # PEM file: its private key
    tls_server_name: str = ""  # the name to verify on the server's certificate
    api_key: str = field(default="", repr=False)  # never in a repr, a log or an error

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValidationError(
                "TEMPORAL_TLS_CERT / TEMPORAL_TLS_KEY", "a client certificate needs its key (both)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TemporalAccess:
        tls_text = env.get(ENV_NAMES["tls"], "").strip().lower()
        if tls_text not in TRUE_WORDS + FALSE_WORDS:
            raise ValidationError("TEMPORAL_TLS", f"must be true or false, got {tls_text!r}")
        values = {
            name: env.get(var, "").strip() for name, var in ENV_NAMES.items() if name != "tls"
        }
        return cls(tls=tls_text in TRUE_WORDS, **values)

    @property
    def uses_tls(self) -> bool:
        return self.tls or any(
            (self.tls_ca, self.tls_cert, self.tls_key, self.tls_server_name, self.api_key)
        )

    def client_options(self) -> dict[str, Any]:
        """Client.connect's `tls` and `api_key` arguments; reads the PEM files (a file that
        cannot be read raises ValidationError naming its setting)."""
        from temporalio.service import TLSConfig

        options: dict[str, Any] = {"api_key": self.api_key or None, "tls": self.uses_tls}
        if any((self.tls_ca, self.tls_cert, self.tls_server_name)):
            options["tls"] = TLSConfig(
                server_root_ca_cert=_read("tls_ca", self.tls_ca),
                client_cert=_read("tls_cert", self.tls_cert),
                client_private_key=_read("tls_key", self.tls_key),
                domain=self.tls_server_name or None,
            )
        return options

    def ssl_context(self) -> ssl.SSLContext:
        """The same trust, client certificate and key for an HTTPS client (the sidecar's reads
        over Temporal's HTTP API); a file that cannot be read raises ValidationError naming its
        setting."""
        ca = _read("tls_ca", self.tls_ca)
        context = ssl.create_default_context(cadata=ca.decode("ascii", "replace") if ca else None)
        if self.tls_cert:
            try:
                context.load_cert_chain(self.tls_cert, self.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise ValidationError(
                    "TEMPORAL_TLS_CERT / TEMPORAL_TLS_KEY", f"cannot load them: {exc}"
                ) from None
        return context


def _read(setting: str, path: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValidationError(ENV_NAMES[setting], f"cannot read {path}: {exc.strerror}") from None


def unreachable(address: str, access: TemporalAccess, exc: BaseException) -> str:
    """One line that names the setting to fix, from the SDK's (long, nested) connect error."""
    text = str(exc) or type(exc).__name__
    where = f"Temporal at {address}"
    trust = f"the CA in {access.tls_ca}" if access.tls_ca else "the system's trust store"
    if "NotValidForName" in text or "Hostname mismatch" in text:
        name = access.tls_server_name or address.rsplit(":", 1)[0]
        return (
            f"TEMPORAL_TLS_SERVER_NAME: {where} presents a certificate that is not valid for "
            f"{name!r}"
        )
    if "UnknownIssuer" in text or "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TEMPORAL_TLS_CA: {where} presents a certificate not signed by {trust}"
    closed = any(mark in text for mark in CLOSED_MARKS)
    if access.uses_tls and closed:
        hint = "" if access.tls_cert else " (it may require a client certificate: set "
        hint += "" if access.tls_cert else "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY)"
        return f"TEMPORAL_TLS: {where} ended the TLS session{hint}"
    if not access.uses_tls and closed:
        return (
            f"TEMPORAL_TLS: {where} closed the connection; if it expects TLS, set "
            "TEMPORAL_TLS=true (and TEMPORAL_TLS_CA for a private CA)"
        )
    first = text.splitlines()[0][:300]
    return f"TEMPORAL_ADDRESS: cannot reach {where}: {first}"
