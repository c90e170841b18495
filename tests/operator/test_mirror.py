"""The mirror's timeline: due resources come out in time order, a later mark replaces an
earlier one, a discarded resource never comes out. And what the mirror keeps: a finished
resource is let go once an event shows the mirror's final status write, never on an older
event, and comes back when it asks for something."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from stepwise.client.client import Client
from stepwise.operator.kubeapi import KubeApi
from stepwise.operator.mirror import Mirror, _Timeline
from stepwise.operator.models import RETRY_ANNOTATION


def test_due_in_time_order() -> None:
    timeline = _Timeline()
    for uid, at in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("later", 10.0)):
        timeline.add(uid, at)

    assert timeline.pop_due(0.5) == []
    assert timeline.pop_due(2.5) == ["a", "b"]
    assert timeline.next_at() == 3.0
    assert "c" in timeline
    assert "a" not in timeline
    assert len(timeline) == 2


def test_moved_and_discarded_entries() -> None:
    timeline = _Timeline()
    timeline.add("moved", 1.0)
    timeline.add("moved", 5.0)  # the stale 1.0 entry is skipped
    timeline.add("gone", 2.0)
    timeline.discard("gone")
    timeline.discard("never-added")

    assert timeline.next_at() == 5.0
    assert timeline.pop_due(4.0) == []
    assert timeline.pop_due(5.0) == ["moved"]
    assert timeline.next_at() is None
    assert len(timeline) == 0


def test_many_waiting() -> None:
    timeline = _Timeline()
    for i in range(10_000):
        timeline.add(f"r{i}", float(10_000 - i))
    due = timeline.pop_due(100.0)
    assert due == [f"r{i}" for i in range(9_999, 9_899, -1)]
    assert len(timeline) == 9_900


def _body(rv: int, phase: str | None, **extra: Any) -> dict[str, Any]:
    annotations = extra.pop("annotations", {})
    status = {"runId": "u1", "phase": phase, **extra.pop("status", {})} if phase else {}
    return {
        "metadata": {
            "uid": "u1", "namespace": "ns", "name": "r1", "resourceVersion": str(rv),
            "generation": 1, "annotations": annotations,
        },
        "spec": {"workflow": "w", **extra},
        "status": status,
    }  # fmt: skip


def _mirror() -> Mirror:
    """A mirror that is never run: what it keeps is decided without the database or the API."""
    return Mirror(cast(Client, None), cast(KubeApi, SimpleNamespace(requests={})))


def test_a_finished_resource_is_let_go_once_its_final_write_is_seen() -> None:
    mirror = _mirror()
    mirror.observe(_body(10, "Running"))
    tracked = mirror._tracked["u1"]
    # As if its refresh had acted on retry value 1 and written the final status (at 12).
    mirror._due.discard("u1")
    tracked.status, tracked.retried = {"runId": "u1", "phase": "Succeeded"}, "1"
    tracked.written = "12"

    # An event from before that write (an older status, no retryRequest yet) is no reason to
    # let go: were it let go, the next event would find retry value 1 not handled.
    retried = {RETRY_ANNOTATION: "1"}
    mirror.observe(_body(11, "Running", annotations=retried))
    assert mirror.stats()["tracked"] == 1
    assert tracked.status["phase"] == "Succeeded"
    mirror.observe(_body(12, "Succeeded", annotations=retried, status={"retryRequest": "1"}))
    assert mirror.stats()["tracked"] == 0

    # Later events of a finished resource keep nothing, unless it asks for something.
    later = {"team": "billing", **retried}
    mirror.observe(_body(13, "Succeeded", annotations=later, status={"retryRequest": "1"}))
    assert mirror.stats()["tracked"] == 0
    retry = {RETRY_ANNOTATION: "2"}
    mirror.observe(_body(14, "Succeeded", annotations=retry, status={"retryRequest": "1"}))
    assert mirror.stats() == {
        "tracked": 1, "released": 0, "marked": 1, "expiring": 0, "refreshes": 0, "requests": {}
    }  # fmt: skip
    # Of a resource let go, only its name is kept, until it is deleted.
    mirror._due.discard("u1")
    mirror._tracked["u1"].retried, mirror._tracked["u1"].written = "2", "15"
    mirror.observe(_body(15, "Succeeded", annotations=retry, status={"retryRequest": "2"}))
    assert (mirror.stats()["tracked"], mirror.stats()["released"]) == (0, 1)
    mirror.forget("u1")
    assert (mirror.stats()["tracked"], mirror.stats()["released"]) == (0, 0)


def test_a_finished_resource_with_a_ttl_is_kept_until_deleted() -> None:
    mirror = _mirror()
    finished = {"finishedAt": "2026-01-01T00:00:00+00:00"}
    mirror.observe(_body(20, "Failed", ttlSecondsAfterFinished=60, status=finished))
    assert mirror.stats()["tracked"] == 1
    assert mirror.stats()["expiring"] == 1
    mirror.forget("u1")
    assert mirror.stats()["tracked"] == 0
