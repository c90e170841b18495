"""The JSON round trip every stored value takes.

A step's result is stored as JSON text and handed back *decoded from that text*, on the first
run as on replay, so a workflow never sees a value on its first run that a replay could not
reproduce (a tuple becomes a list, a pydantic model becomes a dict).
"""

from __future__ import annotations

import json
import traceback
from typing import Any

from pydantic import BaseModel

from stepwise.errors import StepResultError

_TRACEBACK_LIMIT = 4000


def _default(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def dumps(value: Any) -> str:
    """Compact JSON; pydantic models become their JSON form; NaN and infinity are refused."""
    return json.dumps(value, default=_default, allow_nan=False, separators=(",", ":"))


def loads(text: str) -> Any:
    return json.loads(text)


def encode_result(step: str, value: Any) -> str:
    """``value`` as JSON text, or ``StepResultError`` naming ``step`` and what is wrong."""
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise StepResultError(
            step, f"result must be JSON-serialisable or a pydantic model: {exc}"
        ) from None


def error_document(exc: BaseException, *, step: str | None = None) -> dict[str, Any]:
    """What is stored about a failure: type, message, the step it came from, a capped traceback."""
    doc: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if step is not None:
        doc["step"] = step
    text = "".join(traceback.format_exception(exc))
    if text:
        doc["traceback"] = text[-_TRACEBACK_LIMIT:]
    return doc


def encode_error(exc: BaseException, *, step: str | None = None) -> str:
    return dumps(error_document(exc, step=step))
