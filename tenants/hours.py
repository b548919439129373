"""When a shop's people answer: its opening hours (Settings → opening_hours) read at a moment.

The stored shape is the admin API's `OpeningHours`: `{"timezone": "Europe/Berlin", "days":
{"mon": [["09:00", "17:00"], ...], ...}}`, times in the shop's zone, "24:00" for midnight, a
day not listed closed. A shop that set no hours at all is treated as always staffed: nothing
tells us otherwise, and "a person answers later" would be a wrong promise for a shop whose
agents work in the inbox all day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock(value: str) -> time | None:
    """"HH:MM" → time; "24:00" → None (end of day)."""
    if value == "24:00":
        return None
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _zone(hours: Mapping[str, Any]) -> ZoneInfo:
    try:
        return ZoneInfo(str(hours.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_open(hours: Mapping[str, Any] | None, at: datetime | None = None) -> bool:
    """Whether people answer at `at` (default now). No hours set: always."""
    if not hours or not hours.get("days"):
        return True
    local = (at or datetime.now(UTC)).astimezone(_zone(hours))
    for start, end in hours["days"].get(DAYS[local.weekday()], ()):
        begins, ends = _clock(start), _clock(end)
        if begins is None:
            continue
        now = local.time().replace(tzinfo=None)
        if begins <= now and (ends is None or now < ends):
            return True
    return False


def next_opening(hours: Mapping[str, Any] | None,
                 at: datetime | None = None) -> datetime | None:
    """The next moment people answer after `at` (aware, UTC); None when no hours are set or
    none is within a week; `at` itself when open."""
    if not hours or not hours.get("days"):
        return None
    start = at or datetime.now(UTC)
    if is_open(hours, start):
        return start
    zone = _zone(hours)
    local = start.astimezone(zone)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        for begin, _ in sorted(hours["days"].get(DAYS[day.weekday()], ())):
            opens = _clock(begin)
            if opens is None:
                continue
            moment = datetime.combine(day, opens, tzinfo=zone)
            if moment > local:
                return moment.astimezone(UTC)
    return None
