"""Agents' live stream and the mail notice, in-process on SQLite and PostgreSQL: events posted
to /internal/live (as the gateway and the action server do without Redis) reach the streams
of their shop's agents only, with an opaque conversation id and never the visitor's phone
number; with Redis (TEST_REDIS_URL) they travel over pub/sub. A visitor waiting while nobody
has the inbox open inside opening hours mails the shop once per handoff (a real SMTP server,
aiosmtpd); outside opening hours, or with an agent connected, no mail. About 8 s for both
databases (each stream stays open 1.5 s)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from admin_api.app import create_app
from admin_api.live import LiveHub
from admin_api.routes.conversations import conversation_id
from core import handoffs
from core.conversations import record_message
from core.live import RELAY_PATH, LiveEvent, RedisPublisher
from core.sender_ids import sender_id
from tenants.hours import DAYS
from tenants.models import TenantRow
from tests.admin_api.conftest import Admin, admin_settings, api_call
from tests.integration.mailbox import Mailbox
from tests.polling import eventually
from tests.sanic_client import RunningAppClient, stop_app
from tests.servers import free_port

pytestmark = pytest.mark.asyncio
PHONE = "+15550007777"
STREAM_SECONDS = 1.5


async def started(admin: Admin) -> LiveHub:
    _, response = await admin.client.get("/health")  # starts the app: its hub exists
    assert response.status == 200
    hub: LiveHub = admin.app.ctx.live
    hub.stream_seconds, hub.heartbeat = STREAM_SECONDS, STREAM_SECONDS / 3
    return hub


def follow(admin: Admin, headers: dict[str, str]) -> asyncio.Task[Any]:
    """GET /api/v1/events in the background: (status, None, response) once it ends."""
    return asyncio.create_task(api_call(admin.client, "GET", "/events", headers))


async def relay(admin: Admin, event: LiveEvent, token: str | None = None) -> int:
    _, response = await admin.client.post(
        RELAY_PATH, content=event.dumps(),
        headers={"Authorization": f"Bearer {token or admin.settings.internal_token.reveal()}",
                 "Content-Type": "application/json"})
    return int(response.status)


def frames(text: str) -> list[tuple[str, str]]:
    """(event, data) of each server-sent event in a stream's text."""
    found = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines()
                     if ": " in line and not line.startswith(":"))
        if "event" in lines:
            found.append((lines["event"], lines["data"]))
    return found


async def test_a_shops_events_reach_its_agents_only_without_the_visitors_number(
        admin: Admin) -> None:
    hub = await started(admin)
    ours = sender_id(admin.demo.id, "sms", PHONE)
    theirs = sender_id(admin.other.id, "sms", "+15550008888")
    demo, other = admin.demo.id, admin.other.id
    streams = [follow(admin, admin.demo.auth("agent")), follow(admin, admin.demo.auth("owner")),
               follow(admin, admin.other.auth("agent"))]
    await eventually(lambda: hub.bus.listeners(demo) == 2 and hub.bus.listeners(other) == 1)

    assert await relay(admin, LiveEvent(demo, "message.visitor", ours, {
        "text": "where is my parcel?", "sender_id": ours, "phone": PHONE})) == 202
    assert await relay(admin, LiveEvent(other, "handoff.requested", theirs,
                                        {"reason": "visitor_asked"})) == 202
    assert await relay(admin, LiveEvent(demo, "message.visitor", ours), token="wrong") == 401
    _, response = await admin.client.post(
        RELAY_PATH, content=b"{}", headers={
            "Authorization": f"Bearer {admin.settings.internal_token.reveal()}"})
    assert response.status == 400
    (agent, _, agent_answer), (owner, _, owner_answer), (stranger, _, stranger_answer) = \
        await asyncio.gather(*streams)

    assert agent == owner == stranger == 200
    assert agent_answer.headers["content-type"].startswith("text/event-stream")
    key = admin.settings.conversation_id_key
    for answer in (agent_answer, owner_answer):
        assert answer.text.startswith("retry: ")
        ((kind, data),) = frames(answer.text)
        assert kind == "message.visitor"
        assert json.loads(data) == {"conversation_id": conversation_id(key, demo, ours),
                                    "text": "where is my parcel?", "visitor": "…7777",
                                    "channel": "sms", "at": json.loads(data)["at"]}
        assert PHONE not in answer.text and ours not in answer.text
        assert "handoff.requested" not in answer.text
    ((kind, data),) = frames(stranger_answer.text)
    assert kind == "handoff.requested" and conversation_id(key, other, theirs) in data
    assert "parcel" not in stranger_answer.text and ": heartbeat" in stranger_answer.text

    # Designers may not follow the inbox.
    status, _, _ = await api_call(admin.client, "GET", "/events", admin.demo.auth("designer"))
    assert status == 403


async def test_streams_end_when_the_service_stops(admin: Admin) -> None:
    """A deploy or restart ends the open streams (their pages reconnect, `retry:`) instead of
    the streams holding the shutdown until the server's grace period cuts them off."""
    hub = await started(admin)
    hub.stream_seconds, hub.heartbeat = 600.0, 300.0  # neither would end them in this test
    stream = follow(admin, admin.demo.auth("agent"))
    await eventually(lambda: hub.bus.listeners(admin.demo.id) == 1)

    await stop_app(admin.app)

    status, _, answer = await asyncio.wait_for(stream, timeout=30)
    assert status == 200 and answer.text.startswith("retry: ")
    assert hub.bus.listeners(admin.demo.id) == 0


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL not set")
async def test_with_redis_events_published_anywhere_reach_the_stream(
        admin: Admin, tmp_path: Path) -> None:
    redis_url = os.environ["TEST_REDIS_URL"]
    # Another replica of the admin service, configured with Redis, on the same database.
    app = create_app(admin_settings(tmp_path, admin.database_url, REDIS_URL=redis_url),
                     name=f"admin-redis-{uuid.uuid4().hex[:8]}")
    # Started once for the whole test (tests/sanic_client.py): a plain test client would start
    # the app around each request, and two start-ups ran two Redis relays, so the event came
    # twice now and then.
    replica = replace(admin, app=app, client=RunningAppClient(app))
    hub = await started(replica)
    publisher_redis = Redis.from_url(redis_url)
    try:
        ours = sender_id(admin.demo.id, "web", "visitor-1")
        stream = follow(replica, admin.demo.auth("agent"))
        await eventually(lambda: hub.bus.listeners(admin.demo.id) == 1)
        for _ in range(300):  # the relay's pattern subscription is in place
            if await publisher_redis.pubsub_numpat() > 0:
                break
            await asyncio.sleep(0.01)
        await RedisPublisher(publisher_redis).publish(
            LiveEvent(admin.demo.id, "handoff.claimed", ours, {"assignee": {"id": "u1",
                                                                            "name": "Sam"}}))
        _, _, answer = await stream
        ((kind, data),) = frames(answer.text)
        assert kind == "handoff.claimed"
        assert json.loads(data)["assignee"] == {"id": "u1", "name": "Sam"}
    finally:
        await publisher_redis.aclose()
        await stop_app(app)


async def escalated(admin: Admin, user: str) -> LiveEvent:
    """A visitor of the demo shop asked for a person: the event the gateway publishes."""
    sender = sender_id(admin.demo.id, "whatsapp", user)
    await record_message(admin.sessions, tenant_id=admin.demo.id, sender_id=sender,
                         channel="whatsapp", direction="in", text="a person please")
    row, _ = await handoffs.open_handoff(admin.sessions, tenant_id=admin.demo.id,
                                         sender_id=sender, channel="whatsapp",
                                         reason="visitor_asked", last_message="a person please")
    return LiveEvent(admin.demo.id, handoffs.REQUESTED, sender,
                     {"handoff_id": row.id, "reason": "visitor_asked"})


async def shop_hours(admin: Admin, hours: dict[str, Any] | None) -> None:
    async with admin.sessions() as session:
        shop = await session.get(TenantRow, admin.demo.id)
        assert shop is not None
        shop.support_email, shop.opening_hours = "help@demo.example", hours
        await session.commit()


async def test_a_waiting_visitor_is_mailed_to_the_shop_only_when_nobody_is_there(
        admin: Admin) -> None:
    hub = await started(admin)
    with Mailbox(free_port()) as mailbox:
        admin.app.ctx.settings = replace(
            admin.settings, smtp_url=f"smtp://127.0.0.1:{mailbox.port}",
            admin_public_url="https://admin.example")
        await shop_hours(admin, None)  # no hours set: always staffed

        # An agent has the inbox open: no mail.
        stream = follow(admin, admin.demo.auth("agent"))
        await eventually(lambda: hub.bus.listeners(admin.demo.id) == 1)
        assert await relay(admin, await escalated(admin, "+15550000101")) == 202
        await stream
        await hub.bus.settle()
        assert mailbox.messages == []

        # Nobody there: one mail with a link to the thread, once per handoff.
        event = await escalated(admin, "+15550000102")
        assert await relay(admin, event) == 202
        assert await relay(admin, event) == 202
        await hub.bus.settle()
        (mail,) = mailbox.messages
        assert mail["To"] == "help@demo.example"
        link = ("https://admin.example/app/inbox#"
                + conversation_id(admin.settings.conversation_id_key, admin.demo.id,
                                  event.sender_id))
        body = mail.get_content()
        assert link in body and "whatsapp" in body and "0102" not in body

        # Outside opening hours the conversation waits in the queue: no mail.
        tomorrow = DAYS[(datetime.now(UTC) + timedelta(days=1)).weekday()]
        await shop_hours(admin, {"timezone": "UTC", "days": {tomorrow: [["00:00", "24:00"]]}})
        assert await relay(admin, await escalated(admin, "+15550000103")) == 202
        await hub.bus.settle()
        assert len(mailbox.messages) == 1
