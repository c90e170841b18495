"""What a workflow is: its name (and the rule names follow), function, version, retry policy
and input model. ``@workflow`` (``registry``) makes one from an ``async def f(ctx)``."""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from stepwise.backends.base import ConcurrencyLimit
from stepwise.core import codec, cron, limits
from stepwise.core.retry import RetryPolicy
from stepwise.errors import InvalidArgument, InvalidInput

if TYPE_CHECKING:
    from stepwise.core.context import WorkflowContext

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
