"""Which of several versions of one workflow is the newest: the rule a start without a version
follows (docs/versions.md).

Version strings that are PEP 440 versions (``1``, ``1.10``, ``2.0rc1``, ``v2``) compare as
such, so ``1.10`` is newer than ``1.9`` and ``2.0rc1`` older than ``2.0``. Any other string is
older than every PEP 440 one and compares as text among its kind (``blue`` < ``green``). An
unversioned definition (``version=None``) is older than any versioned one.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.version import InvalidVersion, Version

_NOT_PEP_440 = Version("0")


def sort_key(version: str | None) -> tuple[int, Version, str]:
    """Orders versions oldest first, by the rule in the module docstring; ties between two
    spellings of one PEP 440 version (``1.0`` and ``1``) are broken by their text."""
    if version is None:
        return (0, _NOT_PEP_440, "")
    try:
        return (2, Version(version), version)
    except InvalidVersion:
        return (1, _NOT_PEP_440, version)


def ordered(versions: Iterable[str | None]) -> list[str | None]:
    """``versions`` without repeats, newest first."""
    return sorted(set(versions), key=sort_key, reverse=True)


def newest(versions: Iterable[str | None]) -> str | None:
    """The newest of ``versions`` (None when there are none, or only unversioned ones)."""
    found = ordered(versions)
    return found[0] if found else None
