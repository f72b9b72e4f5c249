"""Database URL helpers: read it from settings, and never print its password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(url: str) -> str:
    """The URL with any password replaced by ***, safe for logs and terminals."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check(url: str, setting: str = "DATABASE_URL") -> str:
    """Raises ValueError naming the setting when the URL is not a PostgreSQL URL."""
    scheme = urlsplit(url).scheme
    if scheme not in ("postgresql", "postgres"):
        shown = redact(url)[:80] or "(empty)"
        raise ValueError(f"{setting}: must be a postgresql:// URL, got {shown!r}")
    return url
