"""The JSON round trip every stored value takes.

A step's result is stored as JSON text and handed back *decoded from that text*, on the first
run as on replay, so a workflow never sees a value on its first run that a replay could not
reproduce (a tuple becomes a list, a pydantic model becomes a dict).

The text is ASCII (``ensure_ascii``): NUL and lone surrogates become ``\\u`` escapes that
every backend stores. Its size is capped (``max_bytes``) where a value is encoded, so a result
too large fails its own step instead of a write batch that other runs share.
"""

from __future__ import annotations

import json
import traceback
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from stepwise.errors import StepResultError

_TRACEBACK_LIMIT = 4000
_MESSAGE_LIMIT = 4000
_CHAIN_LIMIT = 10
_LINK_MESSAGE_LIMIT = 1000

DEFAULT_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""The largest step result, run input or run output stored, as JSON: 4 MiB, like Inngest's
step outputs (Temporal allows 2 MB per payload). Setting: ``max_payload_bytes`` of ``Worker``
and ``Client``, ``STEPWISE_MAX_PAYLOAD_BYTES``."""
MAX_PAYLOAD_BYTES = 200 * 1024 * 1024
"""The highest that setting goes: Postgres holds no value of 255 MB or more in a write batch."""


def _default(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def dumps(value: Any) -> str:
    """Compact JSON; pydantic models become their JSON form; NaN and infinity are refused."""
    return json.dumps(value, default=_default, allow_nan=False, separators=(",", ":"))


def loads(text: str) -> Any:
    return json.loads(text)


def encode_result(step: str, value: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> str:
    """``value`` as JSON text of at most ``max_bytes``, or ``StepResultError`` naming ``step``
    and what is wrong."""
    try:
        text = dumps(value)
    except (TypeError, ValueError) as exc:
        raise StepResultError(
            step, f"result must be JSON-serialisable or a pydantic model: {exc}"
        ) from None
    if len(text) > max_bytes:
        raise StepResultError(step, too_large("result", len(text), max_bytes))
    return text


def too_large(what: str, size: int, max_bytes: int) -> str:
    """The one wording of a payload over the limit (the text is ASCII: characters are bytes)."""
    return (
        f"{what} is {size} bytes as JSON, over the limit of {max_bytes} bytes "
        "(max_payload_bytes, STEPWISE_MAX_PAYLOAD_BYTES)"
    )


def message_of(exc: BaseException) -> str:
    """``str(exc)``, whatever the exception's own ``__str__`` does (raise, return a non-string,
    return megabytes), capped and made storable in every backend."""
    return _storable(_str(exc), _MESSAGE_LIMIT)


def error_document(exc: BaseException, *, step: str | None = None) -> dict[str, Any]:
    """What is stored about a failure: type, message, the step it came from, a capped traceback.

    Any exception object can be encoded: user code decides what its exceptions do, and a failure
    that cannot be recorded would take the engine down instead of the step.
    """
    doc: dict[str, Any] = {"type": type(exc).__name__, "message": message_of(exc)}
    if step is not None:
        doc["step"] = step
    text = _traceback(exc)
    if text:
        doc["traceback"] = _storable(text[-_TRACEBACK_LIMIT:], _TRACEBACK_LIMIT)
    return doc


def _str(exc: BaseException) -> str:
    fallback = "<exception str() failed>"
    try:
        text = str(exc)
    except BaseException:  # user code: whatever it raises, the fallback stands
        return fallback
    return text if isinstance(text, str) else fallback


def _storable(text: str, limit: int) -> str:
    """At most ``limit`` characters, without NUL or lone surrogates (Postgres stores neither)."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _traceback(exc: BaseException) -> str:
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
        head = f"Traceback (most recent call last):\n{frames}" if frames else ""
        message = _str(link)
        if len(message) > _LINK_MESSAGE_LIMIT:  # the whole message is the document's own
            message = message[: _LINK_MESSAGE_LIMIT - 1] + "…"
        kind = type(link).__qualname__
        module = type(link).__module__
        if module not in ("builtins", "__main__"):
            kind = f"{module}.{kind}"
        blocks.append(f"{head}{kind}: {message}\n{after}" if message else f"{head}{kind}\n{after}")
    return "".join(blocks)


def encode_error(exc: BaseException, *, step: str | None = None) -> str:
    return dumps(error_document(exc, step=step))


def same_json(a: str, b: str) -> bool:
    """Whether two JSON texts hold the same value, whatever their spacing, key order or number
    spelling (Postgres' jsonb rewrites all three); ``true`` is never the same as ``1``."""
    first = _canonical(json.loads(a, parse_float=Decimal, parse_int=Decimal))
    second = _canonical(json.loads(b, parse_float=Decimal, parse_int=Decimal))
    return bool(first == second)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return (type(value).__name__, value)
