"""What a page shows of a payload: indented JSON, cut with a note when it is large."""

from __future__ import annotations

from stepwise.dashboard import views


def test_a_large_payload_is_cut_with_a_note() -> None:
    assert views.pretty({"a": 1}) == '{\n  "a": 1\n}'
    shown = views.pretty("x" * (views.PAYLOAD_CHARS + 10))
    assert shown.startswith('"xxx')
    assert shown.endswith(
        f"cut at {views.PAYLOAD_CHARS:,} of {views.PAYLOAD_CHARS + 12:,} characters: "
        "stepwise runs show --json prints it all"
    )
