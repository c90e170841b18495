"""Versioned migrations: ordered, immutable ``NNNN_slug.sql`` files per dialect.

The same number means the same logical change in every dialect. Each backend applies the
pending ones on ``open()`` under its own lock (a Postgres advisory lock, SQLite
``BEGIN IMMEDIATE``) and records them in ``stepwise_migrations(version, name, applied_at)``.
Released files are never edited; a change is a new file.

A database whose newest applied migration is one this stepwise does not ship was migrated by a
newer stepwise: opening it fails with ``SchemaTooNew`` before anything is read or written, so an
old worker or client never serves (or damages) a schema it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources

from stepwise.errors import SchemaTooNew

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def discover(package: str) -> list[Migration]:
    """All migrations shipped in ``package`` (a ``migrations`` folder), in version order."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{package} has two migrations with one number: {versions}")
    return found


def pending(package: str, applied: Collection[int], url: str) -> list[Migration]:
    """The migrations shipped in ``package`` and not yet ``applied`` to the database at ``url``,
    in order; ``SchemaTooNew`` when the database holds a migration newer than any shipped one.
    The caller applies each one, then records it, in the transaction that holds the lock."""
    shipped = discover(package)
    known = max((m.version for m in shipped), default=0)
    found = max(applied, default=0)
    if found > known:
        raise SchemaTooNew(url, found, known)
    return [m for m in shipped if m.version not in applied]
