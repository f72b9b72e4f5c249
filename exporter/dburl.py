"""Database URL helpers: check it, and never print its password, in whatever form it came.

A PostgreSQL connection string comes as a URL (`postgresql://user:pass@host/db`, possibly with
`?password=...` or `?sslpassword=...` in its query) or as libpq keywords (`host=... password=...`,
values possibly quoted). It may also be malformed (a port that is not a number, a password with an
unencoded `@` or `/`). `redact` hides every password form without parsing strictly, so it works on
all of these; `scrub` also hides a password wherever it appears in other text (an error message
that echoes the connection string).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

HIDDEN = "***"
# password=..., sslpassword=... as a URL query parameter or a libpq keyword; a quoted keyword
# value may hold spaces and escaped quotes.
_KEYWORD = re.compile(
    r"""(?P<key>\b(?:ssl)?password\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'?|[^\s&#]*)""",
    re.IGNORECASE,
)


def _userinfo(url: str) -> tuple[int, int] | None:
    """Where the password of `scheme://user:password@host` starts and ends, if it has one. The
    last `@` counts, so an unencoded `@` or `/` in the password is hidden too."""
    start = url.find("://")
    if start < 0:
        return None
    at = url.rfind("@", start + 3)
    if at < 0:
        return None
    colon = url.find(":", start + 3, at)
    if colon < 0:
        return None
    return colon + 1, at


def redact(url: str) -> str:
    """The connection string with every password replaced by ***, safe for logs and terminals."""
    span = _userinfo(url)
    if span is not None:
        url = url[: span[0]] + HIDDEN + url[span[1] :]
    return _KEYWORD.sub(lambda m: m.group("key") + HIDDEN, url)


def passwords(url: str) -> list[str]:
    """Every password written in the connection string (raw and URL-decoded). Pure."""
    found: list[str] = []
    span = _userinfo(url)
    if span is not None:
        found.append(url[span[0] : span[1]])
    for match in _KEYWORD.finditer(url):
        found.append(match.group("value").strip("'"))
    decoded = [unquote(p) for p in found]
    return [p for p in dict.fromkeys([*found, *decoded]) if p]


def scrub(text: str, url: str) -> str:
    """`text` (an error message, say) with the connection string's passwords hidden."""
    for secret in sorted(passwords(url), key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return redact(text)


def check(url: str, setting: str = "DATABASE_URL") -> str:
    """Raises ValueError (naming `setting` when given) when the text is not a usable PostgreSQL
    URL: the scheme, the port and sslmode are checked here, so a mistake is one line, not a
    traceback. The message shows the URL with its password hidden."""
    shown = redact(url)[:80] or "(empty)"
    named = f"{setting}: " if setting else ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise ValueError(
            f"{named}the port must be a number from 1 to 65535, got {shown!r}"
        ) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{named}must be a postgresql:// URL, got {shown!r}")
    mode = _query_value(parts.query, "sslmode")
    if mode is not None and mode not in SSL_MODES:
        raise ValueError(f"{named}sslmode must be one of {', '.join(SSL_MODES)}, got {mode!r}")
    return url


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _query_value(query: str, key: str) -> str | None:
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == key:
            return unquote(value)
    return None
