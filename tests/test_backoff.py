"""One backoff: ``RetryPolicy`` and every loop that waits for the database share one formula,
and the loops add jitter so workers that lost the database together do not return together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stepwise
from stepwise import RetryPolicy, backoff
from stepwise.backends.postgres import notify
from stepwise.backoff import Backoff
from stepwise.core import journal
from stepwise.operator import mirror
from stepwise.worker import worker

PACKAGE = Path(stepwise.__file__).parent


@pytest.mark.parametrize(
    ("failures", "expected"), [(0, 0.05), (1, 0.05), (2, 0.1), (3, 0.2), (6, 1.6), (7, 2.0)]
)
def test_exponential_doubles_up_to_the_cap(failures: int, expected: float) -> None:
    assert backoff.exponential(failures, 0.05, 2.0, 2.0) == pytest.approx(expected)


def test_exponential_never_overflows() -> None:
    assert backoff.exponential(10**9, 0.05, 1e6, 2.0) == 2.0


def test_retry_policy_is_built_on_it() -> None:
    policy = RetryPolicy(initial_interval=0.3, backoff_coefficient=3.0, max_interval=20.0)
    for failures in range(1, 12):
        assert policy.delay(failures).total_seconds() == pytest.approx(
            backoff.exponential(failures, 0.3, 3.0, 20.0)
        )


@pytest.mark.parametrize(
    "schedule",
    [
        journal.RETRY_BACKOFF,
        worker.RECONNECT_BACKOFF,
        notify.RECONNECT_BACKOFF,
        mirror.RETRY_BACKOFF,
    ],
    ids=["journal", "worker", "notify", "mirror"],
)
def test_every_loop_waits_a_jittered_exponential(schedule: Backoff) -> None:
    for failures in (1, 3, 100):
        base = backoff.exponential(failures, schedule.initial, schedule.coefficient, schedule.cap)
        delays = [schedule.delay(failures) for _ in range(500)]
        assert all(base * (1 - backoff.JITTER) <= d <= base for d in delays)
        assert len(set(delays)) > 400, "the waits are not spread"
    assert schedule.delay(10**6) <= schedule.cap


def test_no_delay_table_is_left() -> None:
    """A hand-rolled loop indexes a tuple of delays; the one backoff replaces them all."""
    tables = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
                items = node.value.elts
                if len(items) > 2 and all(
                    isinstance(i, ast.Constant) and isinstance(i.value, float) for i in items
                ):
                    tables.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not tables
