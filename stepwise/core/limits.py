"""The bounds every entry point enforces, in one place, so the CLI, the client, the worker and
the step API refuse the same values in the same words, before anything is stored.

Why these bounds: nan or infinity makes a wait last forever or a poll loop spin; a duration
past ``MAX_SECONDS`` overflows a datetime; Postgres cannot store text holding NUL or a lone
surrogate; an input nested past ``MAX_INPUT_DEPTH`` exhausts Python's recursion when a worker
decodes it; an integer past SQLite's 64 bits cannot even be bound to a query.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

from stepwise.errors import InvalidArgument, InvalidInput

MAX_SECONDS = timedelta(days=36500).total_seconds()
"""A hundred years: any longer duration is a mistake, and far longer ones overflow a datetime."""
MAX_CONCURRENCY = 10_000
MAX_LIST_LIMIT = 10_000
MAX_KEY_LENGTH = 255
"""Idempotency keys and versions: what Stripe allows, and well under a btree index entry."""
MAX_INPUT_DEPTH = 100

DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
"""``90s``, ``10m``, ``1h30m``, ``30d``: whole numbers with units, largest first by habit (a
WorkflowRun's deadline and TTL, a worker's retention, ``runs prune --older-than``)."""
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_MESSAGE = "must be a duration like 90s, 10m or 1h30m"


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` → 90 minutes; ``ValueError`` for anything ``DURATION_PATTERN`` refuses."""
    if re.fullmatch(DURATION_PATTERN, text) is None:
        raise ValueError(f"{DURATION_MESSAGE}, not {text!r}")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def seconds(value: float | timedelta, name: str, *, zero: bool = False) -> float:
    """``value`` (seconds or a timedelta) as finite seconds, above zero (or at least zero with
    ``zero``) and at most ``MAX_SECONDS``; ``InvalidArgument`` naming ``name`` otherwise."""
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            number = math.inf
    else:
        raise TypeError(
            f"{name} must be a number of seconds or a timedelta, got {type(value).__name__}"
        )
    if math.isnan(number):
        raise InvalidArgument(name, "must be a number of seconds, got nan")
    if number < 0 or (number == 0 and not zero):
        raise InvalidArgument(
            name, f"must be {'at least 0' if zero else 'positive'}, got {number:g}"
        )
    if number > MAX_SECONDS:
        raise InvalidArgument(
            name, f"must be at most {MAX_SECONDS:.0f} seconds (100 years), got {number:g}"
        )
    return number


def count(value: int, name: str, *, high: int) -> int:
    """``value`` as a whole number from 1 to ``high``; ``InvalidArgument`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 1 <= value <= high:
        raise InvalidArgument(name, f"must be from 1 to {high}, got {value}")
    return value


def text(value: str, name: str, *, max_length: int) -> str:
    """``value`` as non-empty text of at most ``max_length`` characters that every backend can
    store; ``InvalidArgument`` naming ``name`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidArgument(name, "must not be empty")
    if len(value) > max_length:
        raise InvalidArgument(
            name, f"must be at most {max_length} characters, got {len(value)}: {shown(value)}"
        )
    problem = unstorable(value)
    if problem:
        raise InvalidArgument(name, f"must not contain {problem}")
    return value


def check_json(value: Any, what: str) -> None:
    """``InvalidInput`` naming ``what`` if decoded JSON ``value`` nests deeper than
    ``MAX_INPUT_DEPTH`` or holds text (a key or a string) that a backend cannot store.

    Iterative, so a value of any depth is judged without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = unstorable(item)
            if problem:
                raise InvalidInput(f"{what} must not contain {problem}")
        elif isinstance(item, dict | list):
            if depth >= MAX_INPUT_DEPTH:
                raise too_deep(what)
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def shown(value: object, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters: a 6,000-character name still fits a line."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 4]}...{text[-1]}"


def too_deep(what: str) -> InvalidInput:
    return InvalidInput(f"{what} is nested more than {MAX_INPUT_DEPTH} levels deep")


def unstorable(value: str) -> str | None:
    """What in ``value`` no backend can store (Postgres refuses both), or None."""
    if "\x00" in value:
        return "a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (text that is not valid Unicode)"
    return None
