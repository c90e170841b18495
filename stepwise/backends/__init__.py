"""Storage layer: the ``Backend`` protocol (``base``) and its Postgres and SQLite implementations.

Membership: code that talks to a database. Backends own the record types they speak; they
never import ``stepwise.core`` or anything above it, and each dialect keeps its SQL in
``.sql`` files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepwise.backends import urls
from stepwise.errors import ConfigurationError

if TYPE_CHECKING:
    from stepwise.backends.base import Backend

DEFAULT_URL = "sqlite:///stepwise.db"


def open_backend(url: str, *, schema: str = "stepwise", create: bool = True) -> Backend:
    """A backend for ``url`` (not yet opened): ``postgresql://…`` or ``sqlite:///path``.

    ``schema`` names the Postgres schema that holds stepwise's tables. ``create=False`` is for
    commands that only read or change existing runs: a missing SQLite file, or a Postgres
    database without that schema, is then an error naming it, not a new empty database or
    schema (a Postgres database itself is never created by stepwise).
    """
    scheme = urls.split(url).scheme
    if scheme in ("postgresql", "postgres"):
        try:
            from stepwise.backends.postgres.backend import PostgresBackend
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "the Postgres backend needs asyncpg: pip install 'stepwise-workflows[postgres]'"
            ) from exc
        return PostgresBackend(url, schema=schema, create=create)
    if scheme == "sqlite":
        from stepwise.backends.sqlite.backend import SqliteBackend

        return SqliteBackend(url, create=create)
    raise ConfigurationError(
        f"unsupported database URL {urls.hide_password(url)!r}: "
        "use postgresql://user:pass@host:port/db or sqlite:///path/to/file.db"
    )
