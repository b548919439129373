"""Whether a shop's people answer now, in the shop's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from tenants.hours import is_open, next_opening

HOURS = {"timezone": "Europe/Berlin",
         "days": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "sat": [["10:00", "24:00"]]}}


def test_open_inside_a_period_in_the_shops_zone_and_closed_outside() -> None:
    # Monday 30 November 2026: Berlin is UTC+1.
    assert is_open(HOURS, datetime(2026, 11, 30, 8, 30, tzinfo=UTC))  # 09:30 Berlin
    assert not is_open(HOURS, datetime(2026, 11, 30, 11, 30, tzinfo=UTC))  # lunch
    assert not is_open(HOURS, datetime(2026, 11, 30, 7, 59, tzinfo=UTC))  # 08:59 Berlin
    assert not is_open(HOURS, datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # Tuesday: closed
    assert is_open(HOURS, datetime(2026, 12, 5, 22, 59, tzinfo=UTC))  # Saturday 23:59


def test_a_shop_without_hours_is_always_staffed() -> None:
    assert is_open(None) and is_open({}) and is_open({"timezone": "UTC", "days": {}})
    assert next_opening(None) is None


def test_next_opening_after_closing_time() -> None:
    friday_evening = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    assert next_opening(HOURS, friday_evening) == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    lunch = datetime(2026, 11, 30, 11, 30, tzinfo=UTC)
    assert next_opening(HOURS, lunch) == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
