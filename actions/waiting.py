"""What the visitor hears when a person takes over: how long the wait usually is, or, outside
the shop's opening hours, that a person answers on this channel when the team is back.

The wait is the shop's own recent experience: the median time from a request to an agent
taking it (the first claim or transfer in the event log, `conversation_events`) over its last
`SAMPLE` handoffs an agent took, rounded to minutes. The log and not `assigned_at`: a transfer
moves `assigned_at` to the transfer's time. With no history yet it is "a few minutes", which is
what a shop that just started with the inbox should promise.

Opening hours are the shop's setting (tenants/hours.py); a shop that set none is always staffed.
The time the team is back is said in the shop's time zone with its abbreviation ("tomorrow at
09:00 CET"): the visitor may be elsewhere, and the shop's own texts are written in its time.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from actions.said import Said
from core.conversations import HandoffRow
from core.handoffs import CLAIMED, TRANSFERRED, ConversationEventRow
from tenants.hours import is_open, next_opening

SAMPLE: Final = 20  # recent handoffs an agent took, for the median wait
NO_HISTORY: Final = "a few minutes"
OPEN_RESPONSE: Final = "utter_handoff_requested"
CLOSED_RESPONSE: Final = "utter_handoff_requested_closed"
CLOSED_NO_TIME_RESPONSE: Final = "utter_handoff_requested_later"


async def median_wait_minutes(sessions: async_sessionmaker, tenant_id: str) -> int | None:
    """Median minutes from request to an agent taking it, over the shop's last SAMPLE taken
    handoffs; None without any."""
    async with sessions() as session:
        taken = (await session.execute(
            select(HandoffRow.id, HandoffRow.sender_id, HandoffRow.created_at)
            .where(HandoffRow.tenant_id == tenant_id, HandoffRow.assigned_at.is_not(None))
            .order_by(HandoffRow.id.desc()).limit(SAMPLE))).all()
        if not taken:
            return None
        first_taken = dict((await session.execute(
            select(ConversationEventRow.handoff_id, func.min(ConversationEventRow.created_at))
            # sender_id is indexed; handoff ids alone would scan the shop's whole log.
            .where(ConversationEventRow.sender_id.in_({row.sender_id for row in taken}),
                   ConversationEventRow.tenant_id == tenant_id,
                   ConversationEventRow.handoff_id.in_([row.id for row in taken]),
                   ConversationEventRow.kind.in_((CLAIMED, TRANSFERRED)))
            .group_by(ConversationEventRow.handoff_id))).tuples().all())
    waits = [(first_taken[row.id] - row.created_at).total_seconds() / 60
             for row in taken if first_taken.get(row.id) is not None]
    if not waits:
        return None
    return max(round(statistics.median(waits)), 0)


def wait_phrase(minutes: int | None) -> str:
    """'a few minutes' (no history), 'under a minute', 'about a minute', 'about 7 minutes',
    'about 2 hours': reads after 'the wait is usually'."""
    if minutes is None:
        return NO_HISTORY
    if minutes < 1:
        return "under a minute"
    if minutes == 1:
        return "about a minute"
    if minutes < 90:
        return f"about {minutes} minutes"
    return f"about {round(minutes / 60)} hours"


def _zone(hours: Mapping[str, Any]) -> ZoneInfo:
    try:
        return ZoneInfo(str(hours.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def opening_phrase(opens: datetime, now: datetime, hours: Mapping[str, Any]) -> str:
    """'today at 14:00 CET', 'tomorrow at 09:00 CET', 'on Monday at 09:00 CET' (the shop's
    time); reads after 'back'."""
    zone = _zone(hours)
    local, today = opens.astimezone(zone), now.astimezone(zone).date()
    clock = f"{local:%H:%M} {local.tzname()}"
    days = (local.date() - today).days
    if days == 0:
        return f"today at {clock}"
    if days == 1:
        return f"tomorrow at {clock}"
    return f"on {local:%A} at {clock}"


def announcement(hours: Mapping[str, Any] | None, now: datetime, wait_minutes: int | None,
                 created: bool = True) -> Said:
    """What the visitor is told when the conversation goes to the team at `now`."""
    if not created:
        return Said("utter_handoff_already_requested")
    if is_open(hours, now):
        return Said(OPEN_RESPONSE, {"wait": wait_phrase(wait_minutes)})
    opens = next_opening(hours, now)
    if opens is None or hours is None:
        return Said(CLOSED_NO_TIME_RESPONSE)
    return Said(CLOSED_RESPONSE, {"opens": opening_phrase(opens, now, hours)})
