"""GET /analytics/handoffs: waiting and handling times, bot versus people, and ratings by
channel and agent, from seeded handoffs and messages (SQLite and PostgreSQL). About 3 s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.conversations import HandoffRow, MessageRow
from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio

DAY = datetime(2026, 3, 2, tzinfo=UTC)
RANGE = {"from": "2026-03-02", "to": "2026-03-03"}


def at(hours: float, minutes: float = 0, seconds: float = 0) -> datetime:
    return DAY + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def handoff(shop: str, visitor: str, channel: str, created: datetime, *, status: str = "resolved",
            assigned: float | None = None, replied: float | None = None,
            resolved: float | None = None, agent: tuple[str, str] | None = None,
            rating: int | None = None) -> HandoffRow:
    """A handoff whose times are seconds after `created`."""
    def later(seconds: float | None) -> datetime | None:
        return None if seconds is None else created + timedelta(seconds=seconds)

    return HandoffRow(
        tenant_id=shop, sender_id=f"{shop}:{channel}:{visitor}", channel=channel,
        reason="visitor_asked", status=status, created_at=created,
        assigned_at=later(assigned), first_reply_at=later(replied), resolved_at=later(resolved),
        assignee_id=agent[0] if agent else None, assignee_name=agent[1] if agent else None,
        resolved_by=agent[0] if agent and status == "resolved" else None, rating=rating)


async def seed(admin: Admin) -> None:
    demo, other = admin.demo.id, admin.other.id
    ada, night = ("user-ada", "Ada"), ("key:abc123", "Night shift")
    rows: list[Any] = [
        handoff(demo, "v1", "web", at(10), assigned=60, replied=120, resolved=720, agent=ada,
                rating=5),
        handoff(demo, "v2", "sms", at(11), assigned=300, replied=600, resolved=1200, agent=ada,
                rating=3),
        handoff(demo, "v3", "web", at(12), assigned=30, replied=60, resolved=1860, agent=night,
                rating=4),
        handoff(demo, "v4", "web", at(13), status="queued"),  # nobody answered yet
        # Not counted: another shop's, and one requested after the period.
        handoff(other, "v1", "web", at(10), assigned=1, replied=2, resolved=3, agent=ada,
                rating=1),
        handoff(demo, "v9", "web", at(24 * 5), assigned=1, replied=2, resolved=3, agent=ada,
                rating=1),
    ]
    for visitor, channel in (("v1", "web"), ("v2", "sms"), ("v3", "web"), ("v4", "web"),
                             ("v5", "web"), ("v6", "sms")):  # v5, v6: the bot alone
        rows.append(MessageRow(tenant_id=demo, sender_id=f"{demo}:{channel}:{visitor}",
                               channel=channel, direction="in", text="hello",
                               created_at=at(9, 30), handled_at=at(9, 30), outcome="flow"))
    async with admin.sessions() as session:
        session.add_all(rows)
        await session.commit()


async def test_handoff_figures_for_a_period(admin: Admin) -> None:
    await seed(admin)
    status, body = await admin.call("GET", "/analytics/handoffs", role="designer",
                                    params=RANGE)
    assert status == 200, body
    assert (body["requested"], body["answered"], body["resolved"]) == (4, 3, 3)
    # Waiting for the first human reply: 120, 600 and 60 seconds.
    assert body["waiting"] == {"count": 3, "average_seconds": 260.0, "median_seconds": 120.0,
                               "p90_seconds": 600.0}
    # Handling, claim to resolution: 660, 900 and 1830 seconds.
    assert body["handling"] == {"count": 3, "average_seconds": 1130.0, "median_seconds": 900.0,
                                "p90_seconds": 1830.0}
    assert (body["conversations"], body["resolved_by_bot"], body["resolved_by_human"]) == (
        6, 2, 3)
    assert body["satisfaction"] == {"count": 3, "average": 4.0}
    assert body["satisfaction_by_channel"] == [
        {"channel": "sms", "count": 1, "average": 3.0},
        {"channel": "web", "count": 2, "average": 4.5}]
    assert body["agents"] == [
        {"id": "user-ada", "name": "Ada", "resolved": 2,
         "handling": {"count": 2, "average_seconds": 780.0, "median_seconds": 660.0,
                      "p90_seconds": 900.0},
         "satisfaction": {"count": 2, "average": 4.0}},
        {"id": "key:abc123", "name": "Night shift", "resolved": 1,
         "handling": {"count": 1, "average_seconds": 1830.0, "median_seconds": 1830.0,
                      "p90_seconds": 1830.0},
         "satisfaction": {"count": 1, "average": 4.0}}]


async def test_a_period_without_handoffs_has_no_averages(admin: Admin) -> None:
    await seed(admin)
    status, body = await admin.call("GET", "/analytics/handoffs",
                                    params={"from": "2026-02-01", "to": "2026-02-28"})
    assert status == 200
    assert body["requested"] == 0 and body["agents"] == []
    assert body["waiting"] == {"count": 0, "average_seconds": None, "median_seconds": None,
                               "p90_seconds": None}
    assert body["satisfaction"] == {"count": 0, "average": None}


async def test_agents_may_not_read_analytics_and_ranges_are_checked(admin: Admin) -> None:
    assert (await admin.call("GET", "/analytics/handoffs", role="agent", params=RANGE))[0] == 403
    status, _ = await admin.call("GET", "/analytics/handoffs",
                                 params={"from": "2026-03-03", "to": "2026-03-02"})
    assert status == 422
