"""The admin service's /internal/live route (how the gateway and the action server post live
events without Redis) answers a body nested past the JSON parser's depth with 400 like any
malformed event, and goes on relaying (SQLite, and PostgreSQL when it answers)."""

from __future__ import annotations

import pytest

from core.live import RELAY_PATH, LiveEvent
from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio


async def post(admin: Admin, body: bytes) -> tuple[int, dict[str, object]]:
    _, response = await admin.client.post(RELAY_PATH, content=body, headers={
        "Authorization": f"Bearer {admin.settings.internal_token.reveal()}",
        "Content-Type": "application/json"})
    return int(response.status), dict(response.json)


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000,
                                  b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
                         ids=["arrays", "objects"])
async def test_an_event_nested_too_deep_is_400_and_the_next_one_is_taken(
        admin: Admin, body: bytes) -> None:
    status, answer = await post(admin, body)
    assert status == 400 and "live event" in str(answer["detail"])
    event = LiveEvent(admin.demo.id, "message.visitor", f"{admin.demo.id}:sms:+15550001111")
    assert await post(admin, event.dumps().encode()) == (202, {"accepted": True})
