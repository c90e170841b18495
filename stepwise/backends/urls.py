"""Database URLs as they may be shown: with the password hidden."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***``: safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))
