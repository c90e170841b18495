"""Errors as people read them: the user's own frame first, the traceback as text.

A stored error document (``codec.error_document``) is JSON: ``{"type", "message", "step"?,
"at"?, "traceback"?}``. ``at`` is ``file:line in function`` of the innermost frame of the
*user's* code, found when the error is recorded (frames exist only then): not stepwise, not
the standard library (asyncio, threading…), not an installed library (pydantic…) unless no
frame of the user's own is there, as when the workflows themselves are installed. Along an
explicit cause chain (``raise StepFailed(...) from exc``) the root cause is looked at first:
the wrapper only says that the error it wraps happened, the cause says where.

Every place that shows an error uses this module: ``Run.error_text``/``Step.error_text`` of
the client, the CLI's ``runs show`` (``render``), the WorkflowRun status message and the
worker's log line (``one_line``).
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

_CHAIN_LIMIT = 10
_LINK_MESSAGE_LIMIT = 1000

_STEPWISE = str(Path(__file__).resolve().parents[1]) + os.sep
_STDLIB = tuple(
    {str(Path(sysconfig.get_paths()[key]).resolve()) + os.sep for key in ("stdlib", "platstdlib")}
)
_INSTALLED = frozenset({"site-packages", "dist-packages"})

_NOT_USERS, _INSTALLED_CODE, _USERS = 0, 1, 2


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when the exception's own ``__str__`` fails."""
    fallback = "<exception str() failed>"
    try:
        text = str(exc)
    except BaseException:  # user code: whatever it raises, the fallback stands
        return fallback
    return text if isinstance(text, str) else fallback


def user_frame(exc: BaseException) -> str | None:
    """``file:line in function`` of the innermost frame of the user's code that ``exc`` (or,
    first, the root of its ``__cause__`` chain) passed through; None when there is none."""
    links = _causes(exc)
    for wanted in (_USERS, _INSTALLED_CODE):
        for link in reversed(links):
            found = _innermost(link.__traceback__, wanted)
            if found is not None:
                return found
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(links) < _CHAIN_LIMIT:
        seen.add(id(current))
        links.append(current)
        current = current.__cause__
    return links


def _innermost(tb: TracebackType | None, wanted: int) -> str | None:
    found = None
    for frame, line in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if _kind(filename) == wanted:
            found = f"{_shown_path(filename)}:{line} in {frame.f_code.co_name}"
    return found


def _kind(filename: str) -> int:
    if filename.startswith("<"):  # <frozen …>, <string>: generated code
        return _NOT_USERS
    path = os.path.realpath(filename)
    if path.startswith(_STEPWISE) or path.startswith(_STDLIB):
        return _NOT_USERS
    parts = Path(path).parts
    if _INSTALLED.intersection(parts):
        after = parts[max(parts.index(p) for p in _INSTALLED if p in parts) + 1 :]
        return _NOT_USERS if after[:1] in (("pydantic",), ("pydantic_core",)) else _INSTALLED_CODE
    return _USERS


def _shown_path(filename: str) -> str:
    """Relative to the working directory when under it (``flows/orders.py``), else absolute."""
    path = os.path.abspath(filename)
    try:
        here = os.getcwd() + os.sep
    except OSError:  # the working directory was removed
        return path
    return path[len(here) :] if path.startswith(here) else path


_HEAD = "Traceback (most recent call last):"
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_chain(exc: BaseException) -> str:
    """The traceback as Python prints it, for the last ``_CHAIN_LIMIT`` links of the
    ``__cause__``/``__context__`` chain. Built link by link: ``traceback.format_exception``
    walks the whole chain (seconds for a long one) and gives up on a raising ``__notes__``."""
    links: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    separator = ""
    while current is not None and id(current) not in seen and len(links) < _CHAIN_LIMIT:
        seen.add(id(current))
        links.append((current, separator))
        if current.__cause__ is not None:
            current, separator = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, separator = current.__context__, _CONTEXT
        else:
            current = None
    blocks = []
    for link, after in reversed(links):
        frames = "".join(traceback.format_tb(link.__traceback__))
        head = f"{_HEAD}\n{frames}" if frames else ""
        message = safe_str(link)
        if len(message) > _LINK_MESSAGE_LIMIT:  # the whole message is the document's own
            message = message[: _LINK_MESSAGE_LIMIT - 1] + "…"
        kind = type(link).__qualname__
        module = type(link).__module__
        if module not in ("builtins", "__main__"):
            kind = f"{module}.{kind}"
        blocks.append(f"{head}{kind}: {message}\n{after}" if message else f"{head}{kind}\n{after}")
    return "".join(blocks)


def one_line(doc: Mapping[str, Any], *, limit: int | None = None) -> str:
    """``ValueError: card declined at flows.py:12 in charge``: the first line of the message
    and where in the user's code it happened; for status messages and log lines."""
    kind, message = doc.get("type"), str(doc.get("message") or "")
    text = f"{kind}: {message}" if kind else message
    return with_location(text.splitlines()[0] if text else "unknown error", doc, limit)


def with_location(text: str, doc: Mapping[str, Any], limit: int | None = None) -> str:
    """``text at file:line in function`` when the document knows where; ``text`` is cut to
    fit ``limit`` characters in all, so the location is never the part cut off."""
    at = doc.get("at")
    suffix = f" at {at}" if at else ""
    if limit is not None and len(text) + len(suffix) > limit:
        text = text[: max(limit - len(suffix) - 1, 0)] + "…"
    return text + suffix


def render(doc: Mapping[str, Any]) -> str:
    """The whole error as text, the user's frame leading: ``flows.py:12 in charge:
    ValueError: card declined``, the step it came from, then the traceback as Python prints
    it (its own lines, never one escaped string)."""
    kind, message = doc.get("type"), str(doc.get("message") or "")
    head = f"{kind}: {message}" if kind else message or "unknown error"
    at = doc.get("at")
    lines = [f"{at}: {head}" if at else head]
    if doc.get("step") is not None:
        lines.append(f"in step {doc['step']!r}")
    text = str(doc.get("traceback") or "")
    if _HEAD in text:  # frames to show, not only the message again
        lines.append(text.rstrip("\n"))
    return "\n".join(lines)
