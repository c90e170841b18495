"""Errors point at the user's code: a failure's stored document says ``at: file:line in
function`` of the innermost frame of the user's own code (not stepwise, asyncio, the standard
library or pydantic), the client's ``error_text`` leads with it and shows the traceback as
text, and the worker's log line ends with it. On both backends."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from harness.workers import Procs
from stepwise import RunStatus, StepStatus
from stepwise.core import codec, tracebacks
from tests.conftest import Engine
from tests.semantics import failing_flows

FLOWS = Path(failing_flows.__file__)


def at(marker: str, function: str) -> str:
    """``file:line in function`` of the line of ``failing_flows`` marked ``marker``."""
    lines = FLOWS.read_text().splitlines()
    [line] = [n for n, text in enumerate(lines, 1) if text.endswith(f"# marker: {marker}")]
    return f"{os.path.relpath(FLOWS)}:{line} in {function}"


async def test_a_failing_workflow_body_shows_its_line_first(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="stepwise.core.replay"):
        run = await engine.run(failing_flows.body_fails)
    assert run.status is RunStatus.FAILED
    where = at("body raises", "body_fails")
    assert run.error["at"] == where
    text = run.error_text
    assert text is not None
    first, *rest = text.splitlines()
    assert first == f"{where}: RuntimeError: the body gave up"
    assert rest[0] == "Traceback (most recent call last):"  # lines of text, not one string
    assert f'  File "{FLOWS}", line {where.split(":")[1].split()[0]}, in body_fails' in rest
    assert rest[-1] == "RuntimeError: the body gave up"
    [logged] = [r.getMessage() for r in caplog.records if run.id in r.getMessage()]
    assert logged.endswith(f"failed: RuntimeError: the body gave up at {where}")


async def test_a_failing_step_shows_the_step_functions_line(engine: Engine) -> None:
    run = await engine.run(failing_flows.step_fails)
    assert run.status is RunStatus.FAILED
    where = at("step raises", "charge_card")
    [step] = await engine.client.steps(run.id)
    assert (step.status, step.error["at"]) == (StepStatus.FAILED, where)
    assert step.error_text is not None
    assert step.error_text.splitlines()[:2] == [
        f"{where}: ValueError: card declined for 250 cents",
        "in step 'charge'",
    ]
    # The run failed with StepFailed, raised from the step's error: the cause says where.
    assert (run.error["type"], run.error["at"]) == ("StepFailed", where)
    assert run.error_text is not None
    assert run.error_text.startswith(f"{where}: StepFailed: step 'charge': failed after 1")


@pytest.mark.parametrize(
    ("flow", "marker", "function", "kind"),
    [
        (failing_flows.library_fails, "library raises", "parse_reply", "JSONDecodeError"),
        (failing_flows.pydantic_fails, "pydantic raises", "read_card", "ValidationError"),
    ],
)
async def test_a_library_raising_points_at_the_users_call(
    engine: Engine, flow: Any, marker: str, function: str, kind: str
) -> None:
    run = await engine.run(flow)
    [step] = await engine.client.steps(run.id)
    assert step.error["type"] == kind
    assert step.error["at"] == at(marker, function)


async def test_an_error_raised_while_handling_another_points_at_the_handler(
    engine: Engine,
) -> None:
    run = await engine.run(failing_flows.wrapped_fails)
    assert run.error["type"] == "LookupError"
    assert run.error["at"] == at("handler raises", "wrapped_fails")


def test_engine_errors_have_no_location_and_still_render() -> None:
    doc = codec.error_document(ValueError("made, never raised"))
    assert "at" not in doc
    assert tracebacks.render(doc) == "ValueError: made, never raised"
    assert tracebacks.one_line(doc) == "ValueError: made, never raised"


def test_one_line_keeps_the_location_when_it_cuts() -> None:
    doc = {"type": "ValueError", "message": "x" * 500 + "\nsecond line", "at": "f.py:3 in g"}
    line = tracebacks.one_line(doc, limit=80)
    assert len(line) == 80
    assert line.endswith("… at f.py:3 in g")
    assert line.startswith("ValueError: xxx")


def test_the_cli_prints_the_users_line_and_the_traceback_as_text(
    procs: Procs, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    ran = procs.cli("run", str(FLOWS), "step-fails", "--database-url", url)
    assert ran.returncode == 1, ran.stderr
    where = at("step raises", "charge_card")
    assert f"{where}: StepFailed: step 'charge'" in ran.stderr
    assert "\nTraceback (most recent call last):\n" in ran.stderr
    run_id = ran.stderr.split("run ", 1)[1].split()[0]

    shown = procs.cli("runs", "show", run_id, "--database-url", url)
    assert shown.returncode == 0, shown.stderr
    # The readable view prints each error as text: the user's line first, the traceback's
    # own lines after it, never one escaped string.
    assert f"{where}: ValueError: card declined for 250 cents\n  in step 'charge'\n" in shown.stdout
    assert '\n    File "' in shown.stdout
    assert "\\n" not in shown.stdout
    doc = json.loads(procs.cli("runs", "show", run_id, "--json", "--database-url", url).stdout)
    assert doc["error"]["at"].endswith(where)  # the worker's working directory is elsewhere
    assert "Traceback (most recent call last)" in doc["steps"][0]["error"]["traceback"]
