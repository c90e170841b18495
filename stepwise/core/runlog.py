"""Logs per run: what a workflow logs is stored with its run.

``ctx.log`` is a ``logging.LoggerAdapter`` bound to the run; records made through it, and those
of any other logger while a step or the workflow body of a run executes, are captured by one
handler on the root logger. The handler finds the run through a context variable, which
tasks inherit and ``calls`` copies into a sync step's thread, so a line knows its run, its
step and the step's attempt without anyone passing them along.

Lines travel as ``LogLine`` ops through the journal: with the run's next write (a step's
result, the run's end), or at the latest ``journal.LOG_FLUSH_SECONDS`` after they were
logged. Logging never costs a round trip of its own per line, and the lines of a completed
step are stored with its result, so they survive a crash that loses nothing else.

Replays: a completed step never runs again, so its lines are never repeated; a step that runs
again (in flight at a crash, or retried) logs again, under its new attempt number. The body
runs again from the top on every execution; its lines are numbered (``ordinal``) in the order
it logs them, and a line whose (attempt, ordinal) is stored already is not stored again.

The engine's own loggers (``stepwise.*``, but ``stepwise.workflow``, ``ctx.log``'s) are not
captured: they describe the worker, not the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import threading
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from stepwise.backends.base import LogEntry, LogLine
from stepwise.core import limits

if TYPE_CHECKING:
    from stepwise.core.journal import Journal

LOGGER_NAME = "stepwise.workflow"
"""The logger behind ``ctx.log``."""
DEFAULT_MAX_RECORDS = 1000
MAX_RECORDS = 100_000
"""The highest cap a worker accepts (``STEPWISE_MAX_LOG_RECORDS``)."""
MAX_MESSAGE_CHARS = 8192
"""A longer line (message and traceback) is cut to this and marked as cut."""


class _Scope(NamedTuple):
    """Where a line is logged; a tuple, as one is made per step attempt."""

    sink: RunLog
    step: str | None
    attempt: int


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "stepwise_run_log", default=None
)


class RunLog:
    """The lines of one execution of a run: made into ``LogLine`` ops, handed to the journal.

    ``emit`` may be called from any thread (a sync step logs in its own); the journal is
    reached on the loop. After ``close`` (the execution ends) lines are dropped: whatever a
    step's abandoned thread still logs belongs to no stored attempt."""

    def __init__(
        self, journal: Journal, token: str, run_id: str, attempt: int, max_records: int
    ) -> None:
        self._journal = journal
        self._token = token
        self._run_id = run_id
        self.attempt = attempt
        self._max_records = max_records
        self._ordinals = itertools.count()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closed = False

    def emit(self, record: logging.LogRecord, step: str | None, attempt: int) -> None:
        if self._closed:
            return
        op = LogLine(
            self._token,
            self._run_id,
            step,
            attempt,
            None if step is not None else next(self._ordinals),
            record.levelno,
            _storable(record.name),
            _storable(_text_of(record)),
            datetime.fromtimestamp(record.created, UTC),
            self._max_records,
        )
        if threading.get_ident() == self._loop_thread:
            self._journal.log(op)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is gone
                self._loop.call_soon_threadsafe(self._journal.log, op)

    def close(self) -> None:
        self._closed = True

    @contextlib.contextmanager
    def body(self) -> Iterator[None]:
        """The workflow body runs inside: its lines (and its steps', see ``step``) are this
        run's."""
        token = _scope.set(_Scope(self, None, self.attempt))
        try:
            yield
        finally:
            _scope.reset(token)


class step:
    """Attempt ``attempt`` of step ``key`` runs inside: its lines say so. A class, not a
    generator: entered once per step attempt, it must cost next to nothing."""

    __slots__ = ("_attempt", "_key", "_token")

    def __init__(self, key: str, attempt: int) -> None:
        self._key = key
        self._attempt = attempt
        self._token: contextvars.Token[_Scope | None] | None = None

    def __enter__(self) -> None:
        scope = _scope.get()
        if scope is not None:
            self._token = _scope.set(_Scope(scope.sink, self._key, self._attempt))

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _scope.reset(self._token)


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """``ctx.log``: a ``logging.Logger`` to the workflow's code, whose records carry the run
    (``run_id``, ``workflow``) and the step they were made in (``step``, None in the body) as
    attributes, for the worker's own log as well."""

    def __init__(self, run_id: str, workflow: str) -> None:
        super().__init__(logging.getLogger(LOGGER_NAME), {"run_id": run_id, "workflow": workflow})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        scope = _scope.get()
        extra = {**(self.extra or {}), "step": None if scope is None else scope.step}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return msg, kwargs


class _Capture(logging.Handler):
    """On the root logger: hands each record made inside a run to that run's ``RunLog``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            scope = _scope.get()
            if scope is not None and _captured(record.name):
                scope.sink.emit(record, scope.step, scope.attempt)
            _last_resort(record)
        except Exception:
            self.handleError(record)


_handler = _Capture()


def capture(level: int = logging.INFO) -> None:
    """Capture records at ``level`` and above made inside runs (idempotent; the last level
    wins). ``ctx.log``'s logger gets that level unless it has one, so ``ctx.log.info`` is
    stored even when the application leaves the root logger at WARNING; plain loggers are
    captured as far as their own level lets their records through."""
    _handler.setLevel(level)
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)
    own = logging.getLogger(LOGGER_NAME)
    if own.level == logging.NOTSET or own.level > level:
        own.setLevel(level)


def render(entry: LogEntry) -> str:
    """``2026-01-31 08:00:01 INFO    [charge #2] message`` (UTC): the step, with its attempt
    past the first, or ``[workflow]`` for the body."""
    where = "workflow" if entry.step is None else entry.step
    if entry.step is not None and (entry.attempt or 1) > 1:
        where += f" #{entry.attempt}"
    level = logging.getLevelName(entry.level)
    return f"{entry.at:%Y-%m-%d %H:%M:%S} {level:<7} [{where}] {entry.text}"


def max_records(value: int) -> int:
    """``value`` as a cap of lines per run; ``InvalidArgument`` naming it otherwise."""
    return limits.count(value, "max_log_records", high=MAX_RECORDS)


def _captured(name: str) -> bool:
    return not name.startswith("stepwise.") or name.startswith(LOGGER_NAME)


def _text_of(record: logging.LogRecord) -> str:
    """The record's message, with its traceback when it has one, cut to a bounded length."""
    text = record.getMessage()
    if record.exc_info:
        text = f"{text}\n{logging.Formatter().formatException(record.exc_info)}"
    elif record.exc_text:
        text = f"{text}\n{record.exc_text}"
    if len(text) > MAX_MESSAGE_CHARS:
        text = f"{text[: MAX_MESSAGE_CHARS - 20]}… [cut at {MAX_MESSAGE_CHARS} chars]"
    return text


def _storable(text: str) -> str:
    """``text`` with what no backend can store (NUL, lone surrogates) replaced."""
    if limits.unstorable(text) is None:
        return text
    cleaned = text.replace("\x00", "\ufffd")
    return cleaned.encode("utf-8", "replace").decode("utf-8")


def _last_resort(record: logging.LogRecord) -> None:
    """What Python prints when no handler takes a record (``logging.lastResort``): this one
    handler on the root logger must not silence an application that configured none."""
    resort = logging.lastResort
    if resort is None or record.levelno < resort.level:
        return
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not _handler for h in logger.handlers):
            return
        logger = logger.parent if logger.propagate else None
    resort.handle(record)
