"""``@workflow``: turns an ``async def f(ctx)`` into a registered, named workflow definition."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from stepwise.core import codec, limits
from stepwise.core.retry import RetryPolicy
from stepwise.errors import DefinitionError, InvalidArgument, InvalidInput

if TYPE_CHECKING:
    from stepwise.core.context import WorkflowContext
    from stepwise.core.registry import Registry

WorkflowFn = Callable[["WorkflowContext[Any]"], Coroutine[Any, Any, Any]]

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
class WorkflowDefinition:
    name: str
    fn: WorkflowFn
    version: str | None
    retry: RetryPolicy | None
    input_model: type[BaseModel] | None

    @property
    def origin(self) -> str:
        """Where the function is defined, for error messages."""
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def validate_input(self, value: Any) -> Any:
        """``value`` checked against the input model (if any) and put through the JSON round
        trip, so a workflow sees the same input whether it runs now or on another worker."""
        if self.input_model is not None:
            try:
                value = self.input_model.model_validate(value)
            except ValidationError as exc:
                raise InvalidInput(
                    f"input of workflow {self.name!r} does not match "
                    f"{self.input_model.__name__}: {exc}"
                ) from None
        try:
            return codec.loads(codec.dumps(value))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"input of workflow {self.name!r} is not JSON: {exc}") from None

    def parse_input(self, stored: Any) -> Any:
        """The value a workflow receives as ``ctx.input``: a model instance when it declares one."""
        if self.input_model is None:
            return stored
        return self.input_model.model_validate(stored)


def _input_model_from_annotation(fn: WorkflowFn) -> type[BaseModel] | None:
    """The ``Model`` in ``async def f(ctx: WorkflowContext[Model])``, if the hint resolves."""
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        return None
    params = list(inspect.signature(fn).parameters)
    hint = hints.get(params[0]) if params else None
    args = typing.get_args(hint)
    if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None


def workflow(
    name: str,
    *,
    version: str | None = None,
    retry: RetryPolicy | None = None,
    input: type[BaseModel] | None = None,  # noqa: A002 - the public keyword reads best
    registry: Registry | None = None,
) -> Callable[[WorkflowFn], WorkflowDefinition]:
    """Register ``async def f(ctx)`` as workflow ``name``.

    ``version`` is recorded on runs started from this definition and read back as
    ``ctx.version``; ``retry`` retries the whole workflow (off by default: steps retry on
    their own); ``input`` (or an annotation ``ctx: WorkflowContext[Model]``) validates input.
    """
    if not is_valid_name(name):
        raise DefinitionError(f"workflow name {name!r} is invalid: {NAME_RULE}")

    def decorate(fn: WorkflowFn) -> WorkflowDefinition:
        if not inspect.iscoroutinefunction(fn):
            raise DefinitionError(f"workflow {name!r}: {fn!r} must be an 'async def' function")
        if len(inspect.signature(fn).parameters) != 1:
            raise DefinitionError(
                f"workflow {name!r}: {fn.__qualname__} must take one argument, ctx"
            )
        definition = WorkflowDefinition(
            name=name,
            fn=fn,
            version=version,
            retry=retry,
            input_model=input or _input_model_from_annotation(fn),
        )
        from stepwise.core.registry import default_registry

        (registry or default_registry).add(definition)
        return definition

    return decorate
