"""Database URLs: checked before use, and shown with the password hidden."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from stepwise.errors import ConfigurationError

_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#:]*):[^/?#]*@")
"""``scheme://user:password@``, the password being what ``urlsplit`` would take for one."""


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***``: safe to print, even when ``url`` is too
    malformed to parse."""
    return _PASSWORD.sub(r"\1:***@", url, count=1)


def split(url: str) -> SplitResult:
    """``url`` in parts, its port checked; ``ConfigurationError`` naming it (password hidden)
    when it cannot be parsed, so a typo never surfaces as a traceback from the driver."""
    try:
        parts = urlsplit(url)
        # A multi-host Postgres URL (host1:5432,host2:5432) is the driver's to check.
        port = None if "," in parts.netloc else parts.port
    except ValueError as exc:
        raise ConfigurationError(f"invalid database URL {hide_password(url)!r}: {exc}") from None
    if port == 0:
        raise ConfigurationError(
            f"invalid database URL {hide_password(url)!r}: port must be from 1 to 65535"
        )
    return parts
