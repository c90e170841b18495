"""The mirror's timeline: due resources come out in time order, a later mark replaces an
earlier one, a discarded resource never comes out."""

from __future__ import annotations

from stepwise.operator.mirror import _Timeline


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
