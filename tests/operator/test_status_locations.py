"""The WorkflowRun status of a run that really failed, on both backends: its message and its
step errors end with the user's ``file:line in function`` (what ``kubectl describe`` shows),
for a failure in the workflow body and in a step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepwise.operator import status
from tests.conftest import Engine
from tests.semantics import failing_flows
from tests.semantics.test_tracebacks import at


async def _status(engine: Engine, flow: Any) -> dict[str, Any]:
    run = await engine.run(flow)
    stored = await engine.client.stored(run.id)
    assert stored is not None
    return status.build(
        *stored, previous=None, generation=1, waiting_reason=None, now=datetime.now(UTC)
    )


async def test_a_failing_body_ends_the_message_with_its_line(engine: Engine) -> None:
    shown = await _status(engine, failing_flows.body_fails)
    assert shown["phase"] == "Failed"
    assert shown["message"] == (
        f"RuntimeError: the body gave up at {at('body raises', 'body_fails')}"
    )


async def test_a_failing_step_ends_the_message_and_its_error_with_the_steps_line(
    engine: Engine,
) -> None:
    shown = await _status(engine, failing_flows.step_fails)
    where = at("step raises", "charge_card")
    assert shown["message"] == (
        "StepFailed: step 'charge': failed after 1 attempt(s): ValueError: card declined for "
        f"250 cents at {where}"
    )
    [step] = shown["stepDetails"]
    assert step["error"] == f"ValueError: card declined for 250 cents at {where}"
