"""What a workflow is: its name (and the rule names follow), function, version, retry policy
and the types of its input and output. ``@workflow`` (``registry``) makes one from an
``async def f(ctx)``.

A workflow declares its types by annotation, ``async def charge(ctx: WorkflowContext[Order])
-> Receipt``, and the step results' machinery (``codec.Declared``, a pydantic ``TypeAdapter``)
carries them: the input is validated where the run is started (when the client has the
definition) and again where it runs, so ``ctx.input`` is an ``Order``; the output is stored as
JSON and a client that started the run with the definition gets a ``Receipt`` back.
"""

from __future__ import annotations

import inspect
import re
import typing
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic

from pydantic import ValidationError
from typing_extensions import TypeVar as TypeVarWithDefault

from stepwise.backends.base import ConcurrencyLimit
from stepwise.core import codec, cron, limits
from stepwise.core.children import ChildCall
from stepwise.core.context import WorkflowContext
from stepwise.core.retry import RetryPolicy
from stepwise.errors import InvalidArgument, InvalidInput

InT = TypeVarWithDefault("InT", default=Any)
"""What ``ctx.input`` is: the type argument of the ``ctx`` annotation."""
OutT = TypeVarWithDefault("OutT", default=Any)
"""What the workflow function returns."""

WorkflowFn = Callable[[WorkflowContext[InT]], Coroutine[Any, Any, OutT]]

NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$"
"""Workflow names: what a Kubernetes resource field and a URL path can carry unescaped."""
_NAME = re.compile(NAME_PATTERN)
NAME_RULE = (
    "use letters, digits, '.', '_' or '-' (at most 253), starting and ending with a letter or digit"
)


def is_valid_name(name: object) -> typing.TypeGuard[str]:
    """Whether a workflow can be named ``name``: the rule ``@workflow`` and ``Client.start``
    share, so a run can never be stored under a name no definition can have."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def checked_name(name: object) -> str:
    """``name`` if a workflow can have it, else ``InvalidArgument``: for names given to start a
    run, where a name no definition can have would leave the run pending forever."""
    if not is_valid_name(name):
        raise InvalidArgument("workflow name", f"{limits.shown(name)} is invalid: {NAME_RULE}")
    return name


@dataclass(frozen=True, slots=True)
class WorkflowDefinition(Generic[InT, OutT]):
    """``@workflow("charge") async def charge(ctx: WorkflowContext[Order]) -> Receipt`` is a
    ``WorkflowDefinition[Order, Receipt]``: ``client.start(charge, order)`` type-checks the
    input and its ``result()`` is a ``Receipt``."""

    name: str
    fn: WorkflowFn[InT, OutT]
    version: str | None
    retry: RetryPolicy | None
    input_model: Any
    """The input type given as ``@workflow(input=…)``; None: the ``ctx`` annotation says."""
    schedule: cron.Cron | None = None
    """Start a run at every tick (``@workflow(name, schedule=…)``); workers keep the schedule
    named after the workflow in the database."""
    schedule_input: Any = None
    concurrency: ConcurrencyLimit | None = None
    """At most N runs RUNNING at once across all workers, in all or per key
    (``@workflow(name, concurrency=N, concurrency_key=FIELD)``); None: no limit."""

    @property
    def origin(self) -> str:
        """Where the function is defined, for error messages."""
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    @property
    def input_type(self) -> codec.Declared | None:
        """The declared input type: ``input=`` or the ``ctx`` annotation (None: plain JSON)."""
        if self.input_model is not None:
            return codec.declared_type(self.input_model)
        return declared_input(self.fn)

    @property
    def output_type(self) -> codec.Declared | None:
        """The declared return type (None: plain JSON)."""
        return codec.declared_result(self.fn)

    def validate_input(self, value: Any) -> Any:
        """``value`` (a model, a dataclass, a dict…) checked against the input type and put
        through the JSON round trip, so a workflow sees the same input whether it runs now or
        on another worker; ``InvalidInput`` naming the workflow and each wrong field."""
        declared = self.input_type
        if declared is not None:
            try:
                value = declared.adapter.validate_python(value)
            except ValidationError as exc:
                raise self._mismatch(declared, exc) from None
        try:
            if declared is not None:
                value = declared.adapter.dump_python(value, mode="json", warnings=False)
            return codec.loads(codec.dumps(value))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"input of workflow {self.name!r} is not JSON: {exc}") from None

    def parse_input(self, stored: str) -> Any:
        """The value a workflow receives as ``ctx.input``, from the stored JSON text: of the
        declared input type, or plain JSON; ``InvalidInput`` when it does not fit (a run
        started by name, or by ``kubectl``, is checked only here)."""
        declared = self.input_type
        try:
            return (
                codec.loads(stored) if declared is None else declared.adapter.validate_json(stored)
            )
        except ValidationError as exc:
            raise self._mismatch(declared, exc) from None
        except ValueError as exc:
            raise InvalidInput(f"input of workflow {self.name!r} is not JSON: {exc}") from None

    def _mismatch(self, declared: codec.Declared | None, exc: ValidationError) -> InvalidInput:
        name = declared.name if declared is not None else "its input type"
        return InvalidInput(
            f"input of workflow {self.name!r} does not match {name}: {_problems(exc)}"
        )


def _problems(exc: ValidationError) -> str:
    """Each error of ``exc`` naming its field: ``cents: Input should be a valid integer (got
    'ten')``, without the documentation URL pydantic's own text adds to every error."""
    lines = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "the value"
        got = "" if error["type"] == "missing" else f" (got {limits.shown(error['input'])})"
        lines.append(f"{field}: {error['msg']}{got}")
    return "; ".join(lines)


_declared_inputs: weakref.WeakKeyDictionary[Callable[..., Any], codec.Declared | None] = (
    weakref.WeakKeyDictionary()
)


def declared_input(fn: Callable[..., Any]) -> codec.Declared | None:
    """The ``Order`` in ``async def f(ctx: WorkflowContext[Order])``, read once per function
    (None: no annotation, ``Any``, or one that resolves only for a type checker)."""
    try:
        return _declared_inputs[fn]
    except KeyError:
        pass
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a name only a type checker sees
        hints = {}
    params = list(inspect.signature(fn).parameters)
    args = typing.get_args(hints.get(params[0])) if params else ()
    declared = codec.declared_type(args[0]) if args else None
    _declared_inputs[fn] = declared
    return declared


def stored_input(
    name: str, definition: WorkflowDefinition[Any, Any] | None, value: Any, max_bytes: int
) -> str:
    """``value`` as the JSON text a run stores: validated by the definition's model when the
    caller knows it, and refused when no worker could decode it or no backend store it."""
    validate = None if definition is None else definition.validate_input
    return stored_json(f"input of workflow {name!r}", value, max_bytes, validate)


def stored_json(
    what: str, value: Any, max_bytes: int, validate: Callable[[Any], Any] | None = None
) -> str:
    """``value`` as stored JSON text (``validate``d first when given), or ``InvalidInput``
    naming ``what``: not JSON, too deep, holding NUL, over ``max_bytes``."""
    try:
        stored = codec.loads(codec.dumps(value)) if validate is None else validate(value)
    except RecursionError:
        raise limits.too_deep(what) from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not JSON: {exc}") from None
    limits.check_json(stored, what)
    text = codec.dumps(stored)
    if len(text) > max_bytes:
        raise InvalidInput(codec.too_large(what, len(text), max_bytes))
    return text


def child_call(workflow: object, value: Any, max_bytes: int) -> ChildCall:
    """A child run to start (``ctx.step.run_workflow``), checked before any step key is taken:
    given the workflow object, the input is validated by its declared type and the output
    decoded to its own; given a name, both are plain JSON."""
    if isinstance(workflow, WorkflowDefinition):
        text = stored_input(workflow.name, workflow, value, max_bytes)
        return ChildCall(workflow.name, workflow.version, text, workflow.output_type)
    name = checked_name(workflow)
    return ChildCall(name, None, stored_input(name, None, value, max_bytes), None)
