"""Versioned migrations: ordered, immutable ``NNNN_slug.sql`` files per dialect.

The same number means the same logical change in every dialect. Each backend applies the
pending ones on ``open()`` under its own lock (a Postgres advisory lock, SQLite
``BEGIN IMMEDIATE``) and records them in ``stepwise_migrations(version, name, applied_at)``.
Released files are never edited; a change is a new file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

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
