"""``@workflow`` and (name, version) → workflow definition (``stepwise.loader`` imports the
user's modules).

A worker serves exactly the workflows, at the versions, in its registry; runs of other
workflows or versions stay pending until some worker that knows them comes (a rolling deploy),
which ``Backend.serving_workers`` makes visible.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable

from stepwise.backends.base import ConcurrencyLimit
from stepwise.core import cron, limits, versions
from stepwise.core.definitions import (
    NAME_RULE,
    InT,
    OutT,
    WorkflowDefinition,
    WorkflowFn,
    is_valid_name,
)
from stepwise.core.retry import RetryPolicy
from stepwise.errors import DefinitionError, InvalidArgument, InvalidInput, UnknownWorkflow


class Registry:
    """Definitions by name and version: several versions of one workflow can be served side by
    side (``docs/versions.md``)."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str | None, WorkflowDefinition]] = {}
        self._newest: dict[str, str | None] = {}
        """Each name's newest version, kept at ``add``: ``get`` runs once per claimed run."""

    def add(self, definition: WorkflowDefinition) -> None:
        same_name = self._by_name.setdefault(definition.name, {})
        existing = same_name.get(definition.version)
        if existing is not None and existing.origin != definition.origin:
            at = "" if definition.version is None else f" version {definition.version!r}"
            raise DefinitionError(
                f"two workflows are registered under the name {definition.name!r}{at}: "
                f"{existing.origin} and {definition.origin}"
            )
        same_name[definition.version] = definition
        self._newest[definition.name] = versions.newest(same_name)

    def get(self, name: str, version: str | None = None) -> WorkflowDefinition:
        """The definition of ``name`` at ``version``; without a version, the newest one
        registered (``core.versions``)."""
        same_name = self._by_name.get(name)
        if same_name is None:
            raise UnknownWorkflow(name, self.names())
        chosen = self._newest[name] if version is None else version
        try:
            return same_name[chosen]
        except KeyError:
            known = [str(v) for v in versions.ordered(same_name) if v is not None]
            raise UnknownWorkflow(name, known, version) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def versions(self) -> dict[str, list[str]]:
        """The versions registered of each workflow that has any, newest first: what a worker
        registers in the database, where claims and starts without a version read them."""
        served = {name: versions.ordered(found) for name, found in self._by_name.items()}
        return {
            name: [v for v in ordered if v is not None]
            for name, ordered in served.items()
            if any(v is not None for v in ordered)
        }

    def limits(self) -> dict[str, ConcurrencyLimit]:
        """The concurrency limits of the workflows that declare one (their newest version),
        by name: what a worker registers in the database, where every claim obeys them."""
        newest = {name: self.get(name) for name in self._by_name}
        return {name: d.concurrency for name, d in newest.items() if d.concurrency is not None}


default_registry = Registry()
"""Where ``@workflow`` registers unless told otherwise."""


_KEY_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")


def _concurrency_limit(
    name: str, concurrency: int | None, key: str | None
) -> ConcurrencyLimit | None:
    """The limit ``@workflow`` declares. The key is a field name, not a function of the
    input: the database computes it at claim time, so a run started by a client that does not
    know the workflow (kubectl, another service) is limited all the same."""
    if concurrency is None:
        if key is not None:
            raise DefinitionError(f"workflow {name!r}: concurrency_key needs concurrency=N")
        return None
    try:
        limits.count(concurrency, "concurrency", high=limits.MAX_CONCURRENCY)
    except (InvalidArgument, TypeError) as exc:
        raise DefinitionError(f"workflow {name!r}: {exc}") from None
    if key is not None and (not isinstance(key, str) or not _KEY_FIELD.fullmatch(key)):
        raise DefinitionError(
            f"workflow {name!r}: concurrency_key must name a top-level field of the input "
            f"(letters, digits, '_' or '-'), got {limits.shown(key)}"
        )
    return ConcurrencyLimit(concurrency, key)


def workflow(
    name: str,
    *,
    version: str | None = None,
    retry: RetryPolicy | None = None,
    input: typing.Any = None,  # noqa: A002 - the public keyword reads best
    schedule: str | None = None,
    schedule_input: typing.Any = None,
    schedule_timezone: str = "UTC",
    concurrency: int | None = None,
    concurrency_key: str | None = None,
    registry: Registry | None = None,
) -> Callable[[WorkflowFn[InT, OutT]], WorkflowDefinition[InT, OutT]]:
    """Register ``async def f(ctx)`` as workflow ``name``.

    ``version`` is recorded on runs started from this definition and read back as
    ``ctx.version``; ``retry`` retries the whole workflow (off by default: steps retry on
    their own); ``input`` (or the annotation ``ctx: WorkflowContext[T]``, any type pydantic
    validates: a model, a dataclass, ``list[int]``…) validates input and types ``ctx.input``;
    ``schedule`` (cron, read in ``schedule_timezone``) starts a run with ``schedule_input`` at
    every tick once a worker serving the workflow has started (see ``docs/schedules.md``);
    ``concurrency`` caps the runs of the workflow running at once across all workers, per
    value of the input's top-level field ``concurrency_key`` when given (docs/concepts.md).
    """
    if not is_valid_name(name):
        raise DefinitionError(f"workflow name {name!r} is invalid: {NAME_RULE}")
    try:
        timetable = None if schedule is None else cron.parse(schedule, schedule_timezone)
    except InvalidArgument as exc:
        raise DefinitionError(f"workflow {name!r}: {exc}") from None
    limit = _concurrency_limit(name, concurrency, concurrency_key)

    def decorate(fn: WorkflowFn[InT, OutT]) -> WorkflowDefinition[InT, OutT]:
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
            input_model=input,
            schedule=timetable,
            schedule_input=schedule_input,
            concurrency=limit,
        )
        if timetable is not None:
            try:
                definition.validate_input(schedule_input)
            except InvalidInput as exc:
                raise DefinitionError(f"schedule_input: {exc}") from None
        (registry or default_registry).add(definition)
        return definition

    return decorate
