"""Cron expressions and the catch-up policy (pure): what is accepted, how a time zone and its
daylight-saving changes shape the ticks, and which missed ticks fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stepwise.core import cron
from stepwise.errors import InvalidArgument

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", T0, T0 + timedelta(minutes=5)),
        ("*/5 * * * *", T0 + timedelta(minutes=1), T0 + timedelta(minutes=5)),
        ("*/10 * * * * *", T0, T0 + timedelta(seconds=10)),
        ("@hourly", T0, T0 + timedelta(hours=1)),
    ],
)
def test_next_tick_is_strictly_after(expression: str, after: datetime, expected: datetime) -> None:
    assert cron.parse(expression).next_after(after) == expected


def test_ticks_are_read_in_the_time_zone_across_daylight_saving() -> None:
    paris = cron.parse("0 9 * * *", "Europe/Paris")
    winter = paris.next_after(datetime(2026, 1, 10, tzinfo=UTC))
    summer = paris.next_after(datetime(2026, 7, 10, tzinfo=UTC))
    assert (winter.hour, summer.hour) == (8, 7)
    assert winter.tzinfo is UTC


@pytest.mark.parametrize(
    ("expression", "timezone", "named"),
    [
        ("* * * *", "UTC", "4 fields"),
        ("61 * * * *", "UTC", "not a valid expression"),
        ("", "UTC", "non-empty string"),
        ("* * * * *", "Mars/Olympus", "not a known IANA time zone"),
        ("* * * * *", "", "IANA name"),
    ],
)
def test_bad_expressions_and_zones_are_refused(expression: str, timezone: str, named: str) -> None:
    with pytest.raises(InvalidArgument, match=named):
        cron.parse(expression, timezone)


EVERY_MINUTE = cron.parse("* * * * *")


def test_a_late_tick_within_the_deadline_fires_and_the_next_follows_it() -> None:
    step = cron.catch_up(EVERY_MINUTE, T0, T0 + timedelta(minutes=3), starting_deadline=300)
    assert step == cron.Step(T0, T0 + timedelta(minutes=1))


def test_ticks_past_the_deadline_are_skipped_to_the_oldest_one_within_it() -> None:
    now = T0 + timedelta(hours=2, seconds=30)
    step = cron.catch_up(EVERY_MINUTE, T0, now, starting_deadline=120)
    assert step == cron.Step(T0 + timedelta(hours=1, minutes=59), T0 + timedelta(hours=2))


def test_when_no_tick_lies_within_the_deadline_none_fires() -> None:
    hourly = cron.parse("0 * * * *")
    now = T0 + timedelta(hours=5, minutes=30)
    step = cron.catch_up(hourly, T0, now, starting_deadline=60)
    assert step == cron.Step(None, T0 + timedelta(hours=6))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (T0, T0),
        (T0 + timedelta(minutes=4, seconds=59), T0),
        (T0 - timedelta(seconds=1), T0 - timedelta(minutes=5)),
    ],
)
def test_latest_tick_at_or_before(moment: datetime, expected: datetime) -> None:
    assert cron.parse("*/5 * * * *").latest_at_or_before(moment) == expected
