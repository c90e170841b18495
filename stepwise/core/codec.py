"""The JSON round trip every stored value takes.

A step's result is stored as JSON text and handed back *decoded from that text*, on the first
run as on replay, so a workflow never sees a value on its first run that a replay could not
reproduce. What pydantic can serialise is accepted (models, dataclasses, ``datetime``, ``UUID``,
``Decimal``, ``Enum``, sets…); NaN and infinity are refused, as JSON has no spelling for them.

A step whose function declares its return type (``-> Invoice``, ``-> list[datetime]``) gets that
type back: the stored text is validated by a pydantic ``TypeAdapter`` of the declared type, so
the first run and a replay both see an ``Invoice``. Without a usable declaration the workflow
gets plain JSON values (a tuple becomes a list, a pydantic model a dict).

The text is ASCII (``ensure_ascii``): NUL and lone surrogates become ``\\u`` escapes that
every backend stores. Its size is capped (``max_bytes``) where a value is encoded, so a result
too large fails its own step instead of a write batch that other runs share.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from stepwise.core import tracebacks
from stepwise.errors import StepResultError

_TRACEBACK_LIMIT = 4000
_MESSAGE_LIMIT = 4000

DEFAULT_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""The largest step result, run input or run output stored, as JSON: 4 MiB, like Inngest's
step outputs (Temporal allows 2 MB per payload). Setting: ``max_payload_bytes`` of ``Worker``
and ``Client``, ``STEPWISE_MAX_PAYLOAD_BYTES``."""
WORKFLOW_RESULT = "<workflow result>"
"""How errors about a workflow's own result name it, where they name a step."""
MAX_PAYLOAD_BYTES = 200 * 1024 * 1024
"""The highest that setting goes: Postgres holds no value of 255 MB or more in a write batch."""


_ENCODER = json.JSONEncoder(default=to_jsonable_python, allow_nan=False, separators=(",", ":"))
"""Made once: ``json.dumps`` with these options builds an encoder per call, half the cost of
encoding a small result (each encoding makes its own state: safe from any thread)."""


def dumps(value: Any) -> str:
    """Compact JSON; what pydantic serialises takes its JSON form; NaN and infinity are refused
    (pydantic leaves them floats, and ``allow_nan=False`` catches them wherever they are)."""
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    return json.loads(text)


def encode_result(
    step: str,
    value: Any,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    declared: Declared | None = None,
) -> str:
    """``value`` as JSON text of at most ``max_bytes``, or ``StepResultError`` naming ``step``
    and what is wrong. ``declared`` (see ``declared_result``) serialises it as that type."""
    try:
        if declared is not None:
            value = declared.adapter.dump_python(value, mode="json", warnings=False)
        text = dumps(value)
    except (TypeError, ValueError) as exc:
        raise StepResultError(
            step, f"result must be JSON-serialisable or a pydantic model: {exc}"
        ) from None
    if len(text) > max_bytes:
        raise StepResultError(step, too_large("result", len(text), max_bytes))
    return text


def decode_result(step: str, text: str, declared: Declared | None) -> Any:
    """The value a workflow receives for a stored result: plain JSON, or the declared type. A
    stored value that does not fit the declaration (the function returned something else, or
    its declaration changed since) is a ``StepResultError`` naming ``step``."""
    if declared is None:
        return loads(text)
    try:
        return declared.adapter.validate_json(text)
    except ValidationError as exc:
        raise StepResultError(
            step, f"result does not match the declared return type {declared.name}: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class Declared:
    """A result type a step function declares, and the adapter that serialises and
    validates it."""

    hint: Any
    adapter: TypeAdapter[Any]

    @property
    def name(self) -> str:
        return getattr(self.hint, "__name__", None) or str(self.hint)


_declared: weakref.WeakKeyDictionary[Callable[..., Any], Declared | None] = (
    weakref.WeakKeyDictionary()
)
"""Per function, the adapter of its declared result (``None``: nothing usable declared)."""


def declared_result(fn: Callable[..., Any]) -> Declared | None:
    """The result type ``fn`` declares (``functools.partial``, methods and async
    callables objects included), or ``None`` when it declares none, ``Any``, a type that cannot
    be resolved at run time (a name imported only under ``TYPE_CHECKING``) or one pydantic
    cannot serialise: those results stay plain JSON, as before types were read."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    target = getattr(fn, "__func__", fn)  # a bound method: its function outlives it
    if not inspect.isfunction(target):
        target = getattr(type(target), "__call__", None)  # noqa: B004 - callable objects
        if not inspect.isfunction(target):
            return None
    try:
        return _declared[target]
    except KeyError:
        pass
    adapter = declared_type(_return_hint(target))
    _declared[target] = adapter
    return adapter


def _return_hint(fn: Callable[..., Any]) -> Any:
    try:
        hint = typing.get_type_hints(fn).get("return", Any)
    except Exception:  # a name only a type checker sees
        return Any
    # A sync function may return an awaitable; its result is what the awaitable gives.
    if not inspect.iscoroutinefunction(fn) and typing.get_origin(hint) in (Awaitable, Coroutine):
        args = typing.get_args(hint)
        hint = args[-1] if args else Any
    return hint


def declared_type(hint: Any) -> Declared | None:
    """The adapter of type ``hint`` (shared by all who declare it), or None for ``Any`` and
    for types pydantic cannot serialise: those values stay plain JSON."""
    if hint is Any:
        return None
    try:
        return _adapter_of(hint)
    except TypeError:  # unhashable: not cached
        return _build_adapter(hint)


@functools.lru_cache(maxsize=512)
def _adapter_of(hint: Any) -> Declared | None:
    """Shared by every function that declares ``hint``: closures defined anew in each
    execution build no adapter of their own."""
    return _build_adapter(hint)


def _build_adapter(hint: Any) -> Declared | None:
    try:
        return Declared(hint, TypeAdapter(hint))
    except Exception:  # pydantic cannot handle the type: plain JSON, as before
        return None


def too_large(what: str, size: int, max_bytes: int) -> str:
    """The one wording of a payload over the limit (the text is ASCII: characters are bytes)."""
    return (
        f"{what} is {size} bytes as JSON, over the limit of {max_bytes} bytes "
        "(max_payload_bytes, STEPWISE_MAX_PAYLOAD_BYTES)"
    )


def message_of(exc: BaseException) -> str:
    """``str(exc)``, whatever the exception's own ``__str__`` does (raise, return a non-string,
    return megabytes), capped and made storable in every backend."""
    return _storable(tracebacks.safe_str(exc), _MESSAGE_LIMIT)


def error_document(exc: BaseException, *, step: str | None = None) -> dict[str, Any]:
    """What is stored about a failure: type, message, the step it came from, where in the
    user's code it happened (``tracebacks.user_frame``), a capped traceback.

    Any exception object can be encoded: user code decides what its exceptions do, and a failure
    that cannot be recorded would take the engine down instead of the step.
    """
    doc: dict[str, Any] = {"type": type(exc).__name__, "message": message_of(exc)}
    if step is not None:
        doc["step"] = step
    at = tracebacks.user_frame(exc)
    if at is not None:
        doc["at"] = _storable(at, _MESSAGE_LIMIT)
    text = tracebacks.format_chain(exc)
    if text:
        doc["traceback"] = _storable(text[-_TRACEBACK_LIMIT:], _TRACEBACK_LIMIT)
    return doc


def _storable(text: str, limit: int) -> str:
    """At most ``limit`` characters, without NUL or lone surrogates (Postgres stores neither)."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


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
