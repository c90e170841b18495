"""Whatever exception user code raises, its failure is stored: the error encoder survives any
exception object (``__str__`` or ``__repr__`` raising, unpicklable attributes, huge messages,
long or cyclic ``__cause__``/``__context__`` chains)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from stepwise import RetryPolicy, RunStatus, StepStatus, workflow
from stepwise.core import codec
from tests.conftest import Engine

ONCE = RetryPolicy(max_attempts=1)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")


class ExitingStr(Exception):
    def __str__(self) -> str:
        raise SystemExit(3)


class NotAString(Exception):
    def __str__(self) -> Any:
        return 42


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def cyclic() -> Exception:
    a, b = ValueError("a"), KeyError("b")
    a.__cause__, b.__context__ = b, a
    return a


def long_chain(links: int) -> Exception:
    exc = Exception("link 0")
    for n in range(1, links):
        newer = Exception(f"link {n}")
        newer.__cause__ = exc
        exc = newer
    return exc


BAD = {
    "str-raises": Unprintable,
    "str-exits": ExitingStr,
    "str-not-a-string": NotAString,
    "unpicklable": Unpicklable,
    "huge-message": lambda: ValueError("x" * 20_000_000),
    "nul-and-surrogate": lambda: ValueError("a\x00b\udc80c"),
    "cyclic-chain": cyclic,
    "long-chain": lambda: long_chain(200_000),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_any_exception_encodes_to_a_small_json_document(kind: str) -> None:
    exc = BAD[kind]()
    try:
        raise exc
    except BaseException as raised:
        document = codec.loads(codec.encode_error(raised, step="s"))
    assert document["type"] == type(exc).__name__
    assert isinstance(document["message"], str)
    assert "\x00" not in document["message"]
    assert len(document["message"]) <= 4000
    assert len(document["traceback"]) <= 4000
    assert type(exc).__qualname__ in document["traceback"]
    assert "Traceback (most recent call last)" in document["traceback"] or "chain" in kind


@pytest.mark.parametrize("kind", sorted(BAD))
async def test_a_step_raising_any_exception_fails_with_it_stored(engine: Engine, kind: str) -> None:
    def step() -> None:
        raise BAD[kind]()

    @workflow(f"raises-{kind}", registry=engine.registry)
    async def raises(ctx: Any) -> None:
        await ctx.step.run("bad", step, retry=ONCE)

    run = await engine.run(raises)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepFailed"
    (stored,) = await engine.client.steps(run.id)
    assert stored.status is StepStatus.FAILED
    assert stored.error is not None
    assert stored.error["type"] == type(BAD[kind]()).__name__


@pytest.mark.parametrize("kind", ["str-raises", "str-exits", "cyclic-chain"])
async def test_a_workflow_raising_any_exception_fails_with_it_stored(
    engine: Engine, kind: str
) -> None:
    @workflow(f"workflow-raises-{kind}", registry=engine.registry)
    async def raises(ctx: Any) -> None:
        raise BAD[kind]()

    run = await engine.run(raises)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == type(BAD[kind]()).__name__
