"""Named SQL queries, loaded once from a dialect's ``queries.sql``.

The file is a sequence of blocks::

    -- name: claim_runs --
    -- Take available runs and lease them to a worker.
    SELECT ...;

Code refers to queries by name only; no SQL is built in Python except quoted identifiers.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*) --\s*$", re.MULTILINE)


@cache
def load_queries(package: str) -> dict[str, str]:
    """Return ``{name: sql}`` from ``package``'s ``queries.sql`` (comment lines dropped)."""
    text = resources.files(package).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{package}/queries.sql defines {name!r} twice")
        lines = [ln for ln in body.splitlines() if not ln.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip()
    return queries
