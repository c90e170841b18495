"""A run whose replay diverged shows it in its WorkflowRun status: a ``Diverged`` condition
whose message says which stored steps were not requested and which new ones were."""

from __future__ import annotations

import json

from stepwise.backends.base import RunStatus
from stepwise.operator import status
from tests.operator.test_status import NOW, build, conditions, make_run

MESSAGE = (
    "run r diverged from its history: the replay never requested completed steps ['charge']; "
    "it requested steps the history does not hold: ['bill']"
)
WARNING = json.dumps(
    {"type": "ReplayDiverged", "message": MESSAGE, "missing": ["charge"], "new": ["bill"]}
)


def test_a_diverged_run_has_a_diverged_condition() -> None:
    doc = build(make_run(RunStatus.SUCCEEDED, warning=WARNING), [])
    found = conditions(doc)[status.DIVERGED]
    assert (found["status"], found["reason"], found["message"]) == (
        "True",
        "ReplayDiverged",
        MESSAGE,
    )
    assert conditions(doc)[status.SUCCEEDED]["status"] == "True"


def test_the_condition_keeps_its_time_and_is_absent_without_a_warning() -> None:
    assert status.DIVERGED not in conditions(build(make_run(RunStatus.RUNNING), []))
    first = build(make_run(RunStatus.RUNNING, warning=WARNING), [])
    later = build(
        make_run(RunStatus.SUCCEEDED, warning=WARNING),
        [],
        previous=first,
        now=NOW.replace(year=3000),
    )
    assert (
        conditions(later)[status.DIVERGED]["lastTransitionTime"]
        == conditions(first)[status.DIVERGED]["lastTransitionTime"]
    )
