"""How a step function is called: async ones on the event loop, sync ones in a thread of their
own, each attempt's result encoded where it was produced.

A sync function's thread cannot be killed. When its attempt ends without it (a timeout, or the
engine stopping the run), the thread runs on, and the future it would resolve was cancelled
with the attempt: what it returns then is dropped here, logged, and never reaches the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")

_Outcome = tuple[Any, BaseException | None]


async def call(fn: Callable[[], Any], encode: Callable[[Any], E], key: str) -> E:
    """``fn``'s result, as ``encode`` stores it, for step ``key``. Async callables run on the
    loop; sync ones in a thread, so they never block other steps, and their result is encoded
    in that thread too: encoding a large result blocks for as long as it takes (300 MB: about
    0.75 s), which on the loop would stall every run of the worker and could let its leases
    lapse."""
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    ):
        return encode(await fn())
    result: E | _Awaitable = await _in_thread(lambda: _encoded_unless_awaitable(fn(), encode), key)
    if isinstance(result, _Awaitable):
        return encode(await result.awaitable)  # a sync function that returned a coroutine
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class _Awaitable:
    """What a sync step function returned when it is awaitable: awaited on the loop."""

    awaitable: Awaitable[Any]


def _encoded_unless_awaitable(value: Any, encode: Callable[[Any], E]) -> E | _Awaitable:
    return _Awaitable(value) if inspect.isawaitable(value) else encode(value)


async def _in_thread(fn: Callable[[], Any], key: str) -> Any:
    """``fn()`` in a daemon thread of its own, with this context (the running step's key).

    Not ``asyncio.to_thread``: the default executor's threads are joined at exit, so a step that
    never returns would keep a stopping worker alive past its grace period, and a timed-out one
    would hold a pool thread. An abandoned thread finishes (or not) on its own; nobody awaits
    its result any more, so nothing it produces is stored.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_Outcome] = loop.create_future()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            outcome: _Outcome = (context.run(fn), None)
        except BaseException as exc:  # a step's failure, whatever it is
            outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is gone
            loop.call_soon_threadsafe(_resolve, future, outcome, key)

    threading.Thread(target=work, name="stepwise-step", daemon=True).start()
    # The error is raised here, not set on the future: a GeneratorExit that leaves a future's
    # iterator is mistaken by CPython for a coroutine being closed, and escapes every handler.
    value, error = await future
    if error is not None:
        raise error
    return value


def _resolve(future: asyncio.Future[_Outcome], outcome: _Outcome, key: str) -> None:
    if not future.done():
        future.set_result(outcome)
        return
    # The attempt ended without it (timed out, or the run was stopped): nothing stores this.
    log.warning(
        "step %r: its thread returned after its attempt ended; dropped what it returned", key
    )
