"""The provider-channel pipeline: dedupe, background turns, choices, retries and deliveries.

Real database (SQLite always, PostgreSQL and Redis when they answer), a scripted Rasa over
HTTP, and an in-memory sender that can be told to fail.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, update

import connectors.rasa_client
from connectors.credentials import ChannelCredentials
from connectors.errors import UpstreamUnavailable
from connectors.messages import InboundMessage, Media, StatusUpdate
from connectors.outbound import (Answer, OutboundContext, PermanentSendError, TransientSendError,
                                 send_parts)
from connectors.pipeline import APOLOGY, MEDIA_PAYLOAD, Inbox, Route
from connectors.rasa_client import RasaClient
from connectors.relay import Relay
from core.conversations import MessageRow
from core.db import utcnow
from core.deliveries import DeliveryRow
from tenants import TenantResolver
from tenants.crypto import CredentialsBox
from tenants.demo import DEMO_TENANT_ID
from tests.conftest import services
from tests.databases import database_params, migrated_url, seeded_sessions
from tests.integration.stack import free_port

pytestmark = pytest.mark.asyncio

KEY = CredentialsBox.generate_key()
CHOICES = [{"title": "Yes, please", "payload": "/affirm"}, {"title": "No, thanks", "payload": "/deny"}]


class ScriptedRasa(BaseHTTPRequestHandler):
    """Rasa's REST webhook: answers "echo: <text>", offers choices for "offer", fails on "boom"."""

    seen: list[dict[str, Any]] = []
    in_flight, most_in_flight = 0, 0  # turns being answered at once ("slow" ones take 0.3 s)
    counting = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ScriptedRasa.seen.append(body)
        if body["message"] == "slow":
            with ScriptedRasa.counting:
                ScriptedRasa.in_flight += 1
                ScriptedRasa.most_in_flight = max(ScriptedRasa.most_in_flight,
                                                  ScriptedRasa.in_flight)
            time.sleep(0.3)
            with ScriptedRasa.counting:
                ScriptedRasa.in_flight -= 1
        if body["message"] == "boom":
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        reply: dict[str, Any] = {"recipient_id": body["sender"], "text": f"echo: {body['message']}"}
        if body["message"] == "offer":
            reply["buttons"] = CHOICES
        replies = [reply]
        if body["message"] == "long":  # an answer that goes out as two provider messages
            replies = [{**reply, "text": "part 1"}, {**reply, "text": "part 2"}]
        data = json.dumps(replies).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return


class MemorySender:
    provider = "memory"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (to, part)
        self.contexts: list[OutboundContext] = []
        self.failures: list[Exception] = []  # raised by the next part sends, in order

    async def send(self, context: OutboundContext, answers: Sequence[Answer],
                   skip: int = 0) -> list[str]:
        self.contexts.append(context)
        parts = [m["text"] for a in answers for m in a.messages]

        async def one(part: str) -> str:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append((context.to, part))
            return f"mem-{len(self.sent) - 1}"

        return await send_parts(parts, one, skip)


@pytest.fixture(scope="module")
def rasa_url() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedRasa)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest_asyncio.fixture(params=database_params())
async def world(request: pytest.FixtureRequest, tmp_path: Path,
                rasa_url: str) -> AsyncIterator[dict[str, Any]]:
    url = migrated_url(request.param, tmp_path)
    async with seeded_sessions(url) as (_, sessions):
        box = CredentialsBox(KEY)
        async with sessions() as session:
            from tenants.models import TenantRow
            await session.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID).values(
                credentials_encrypted=box.seal({"memory": {"token": "t"}})))
            await session.commit()
        tenant = await TenantResolver(sessions).get("demo")
        redis = None
        if request.param == "postgresql" and services()["redis_url"]:
            import redis.asyncio as aioredis
            redis = aioredis.from_url(services()["redis_url"])
        rasa = RasaClient(rasa_url, "t", 5.0, rasa_url)
        sender = MemorySender()
        inbox = Inbox(sessions, Relay(sessions, rasa), ChannelCredentials(box),
                      {"memory": Route(sender, "memory", status_path="memory/status")},
                      redis=redis, public_base_url="https://bot.example.com", retry_wait=0.01)
        ScriptedRasa.seen.clear()
        # Redis outlives the database: ids unique to this test keep earlier runs out.
        run = uuid.uuid4().hex[:8]
        yield {"inbox": inbox, "sender": sender, "sessions": sessions, "tenant": tenant, "run": run}
        await inbox.drain()
        await rasa.aclose()
        if redis is not None:
            await redis.aclose()


def message(world: dict[str, Any], text: str, message_id: str, user: str = "+15550001",
            **kw: Any) -> InboundMessage:
    return InboundMessage(tenant=world["tenant"], channel="sms", user_key=user, text=text,
                          message_id=f"{message_id}-{world['run']}", provider="memory", **kw)


async def settle(world: dict[str, Any]) -> None:
    await world["inbox"].drain(10)


async def rows(world: dict[str, Any], model: Any) -> list[Any]:
    async with world["sessions"]() as session:
        return list((await session.execute(select(model).order_by(model.id))).scalars())


async def test_accepts_once_and_answers_in_the_background(world: dict[str, Any]) -> None:
    inbox, sender = world["inbox"], world["sender"]
    first = message(world, "hello", "SM-dup-1")
    results = await asyncio.gather(*(inbox.accept(first) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    await settle(world)
    assert sender.sent == [("+15550001", "echo: hello")]
    stored = [(m.direction, m.text) for m in await rows(world, MessageRow)]
    assert stored == [("in", "hello"), ("out", "echo: hello")]
    assert sender.contexts[0].status_callback_url == "https://bot.example.com/channels/demo/memory/status"


async def test_messages_of_one_conversation_are_answered_in_order(world: dict[str, Any]) -> None:
    for i in range(6):
        assert await world["inbox"].accept(message(world, f"m{i}", f"SM-order-{i}"))
    await settle(world)
    assert [part for _, part in world["sender"].sent] == [f"echo: m{i}" for i in range(6)]


async def test_a_numbered_reply_picks_the_offered_choice(world: dict[str, Any]) -> None:
    inbox = world["inbox"]
    await inbox.accept(message(world, "offer", "SM-c-1"))
    await settle(world)
    await inbox.accept(message(world, "2", "SM-c-2"))
    await settle(world)
    await inbox.accept(message(world, "yes please", "SM-c-3"))  # by title, after no offer
    await settle(world)
    assert [s["message"] for s in ScriptedRasa.seen] == ["offer", "/deny", "yes please"]


async def test_media_without_text_reaches_the_bot_as_an_intent_with_urls(world: dict[str, Any]) -> None:
    media = (Media("https://media.example/1.jpg", "image/jpeg"),)
    await world["inbox"].accept(message(world, "", "SM-media", media=media))
    await settle(world)
    seen = ScriptedRasa.seen[-1]
    assert seen["message"] == MEDIA_PAYLOAD
    assert seen["metadata"]["media"] == [{"url": "https://media.example/1.jpg",
                                          "content_type": "image/jpeg"}]


async def test_several_questions_get_one_reply(world: dict[str, Any]) -> None:
    await world["inbox"].accept(message(world, "q1? q2?", "SM-q", questions=("q1?", "q2?")))
    await settle(world)
    assert [s["message"] for s in ScriptedRasa.seen] == ["q1?", "q2?"]
    assert len(world["sender"].contexts) == 1  # one send call for both answers


async def test_bot_error_gets_an_apology_and_is_not_sent_twice(world: dict[str, Any]) -> None:
    await world["inbox"].accept(message(world, "boom", "SM-boom"))
    await settle(world)
    assert world["sender"].sent == [("+15550001", APOLOGY)]
    # Rasa may have taken the message in before failing: a retry would repeat it.
    assert len(ScriptedRasa.seen) == 1


async def test_unreachable_bot_is_retried_then_apologised_for(world: dict[str, Any]) -> None:
    inbox = world["inbox"]
    down = RasaClient(f"http://127.0.0.1:{free_port()}", "t", 2.0, "http://127.0.0.1:9")
    inbox._relay = Relay(world["sessions"], down)
    attempts: list[int] = []
    real_turn = inbox._relay.turn

    async def counted(*args: Any) -> Any:
        attempts.append(1)
        return await real_turn(*args)

    inbox._relay.turn = counted  # type: ignore[method-assign]
    await inbox.accept(message(world, "hello", "SM-down"))
    await settle(world)
    await down.aclose()
    assert len(attempts) == 3  # nothing reached Rasa: trying again is safe
    assert world["sender"].sent == [("+15550001", APOLOGY)]


async def test_transient_failures_are_retried_without_resending_parts(world: dict[str, Any]) -> None:
    sender = world["sender"]
    sender.failures = [TransientSendError("timeout")]
    await world["inbox"].accept(message(world, "hi", "SM-retry-1"))
    await settle(world)
    # Part 1 goes out, part 2 fails once: the retry sends part 2 only.
    sender.sent.clear()
    real_send = sender.send

    async def fail_second_part_once(context: Any, answers: Any, skip: int = 0) -> list[str]:
        if skip == 0:
            sender.failures = []
            parts = [m["text"] for a in answers for m in a.messages]
            sender.sent.append((context.to, parts[0]))
            error = TransientSendError("502")
            error.sent = ["mem-part-1"]
            raise error
        return await real_send(context, answers, skip)

    sender.send = fail_second_part_once  # type: ignore[method-assign]
    await world["inbox"].accept(message(world, "long", "SM-retry-2"))
    await settle(world)
    assert [part for _, part in sender.sent] == ["part 1", "part 2"]
    deliveries = await rows(world, DeliveryRow)
    assert [(d.status, d.attempts) for d in deliveries] == [("accepted", 2)] * 3


async def test_permanent_failure_is_recorded_with_its_code(world: dict[str, Any]) -> None:
    world["sender"].failures = [PermanentSendError("not a mobile number", code="21614")]
    await world["inbox"].accept(message(world, "hi", "SM-perm"))
    await settle(world)
    [delivery] = await rows(world, DeliveryRow)
    assert (delivery.status, delivery.error_code, delivery.attempts) == ("failed", "21614", 1)


async def test_whatsapp_window_closes_24_hours_after_the_last_visitor_message(
        world: dict[str, Any]) -> None:
    inbox, sessions = world["inbox"], world["sessions"]
    wa = InboundMessage(tenant=world["tenant"], channel="whatsapp", user_key="+15550002",
                        text="hi", message_id=f"wamid.{world['run']}", provider="memory")
    await inbox.accept(wa)
    await settle(world)
    assert world["sender"].contexts[-1].window_open is True
    async with sessions() as session:
        await session.execute(update(MessageRow).values(created_at=utcnow() - timedelta(hours=25)))
        await session.commit()
    assert await inbox.window_open(wa.sender_id, "whatsapp") is False
    assert await inbox.window_open(wa.sender_id, "sms") is True


async def test_status_updates_move_forward_only_and_stay_in_their_tenant(
        world: dict[str, Any]) -> None:
    inbox, tenant = world["inbox"], world["tenant"]
    await inbox.accept(message(world, "hi", "SM-status"))
    await settle(world)
    for status in ("delivered", "sent"):  # out of order, as providers deliver them
        await inbox.record_status(tenant, "sms", StatusUpdate("mem-0", status), provider="memory")
    other = type(tenant)(**{**tenant.__dict__, "id": "another-tenant"})
    await inbox.record_status(other, "sms", StatusUpdate("mem-0", "failed", "30003"),
                              provider="memory")
    [delivery] = await rows(world, DeliveryRow)
    assert (delivery.status, delivery.error_code) == ("delivered", None)


async def test_a_status_before_the_send_is_recorded_joins_it(world: dict[str, Any]) -> None:
    inbox, tenant = world["inbox"], world["tenant"]
    await inbox.record_status(tenant, "sms", StatusUpdate("mem-0", "sent"), provider="memory")
    await inbox.accept(message(world, "hi", "SM-early"))
    await settle(world)
    [delivery] = await rows(world, DeliveryRow)
    assert (delivery.status, delivery.sender_id) == ("sent", f"{tenant.id}:sms:+15550001")


async def test_a_message_acknowledged_before_a_crash_is_answered_by_the_next_start(
        world: dict[str, Any]) -> None:
    inbox, sessions = world["inbox"], world["sessions"]
    # The process stored and acknowledged this one, then died before answering.
    lost = message(world, "where is my order?", "SM-crash", user="+15550009",
                   reply_context={"to": "+15005550006"})
    await inbox._relay.store_inbound(lost)
    answered = message(world, "hi", "SM-fine")
    await inbox.accept(answered)
    await settle(world)
    async with sessions() as session:  # both arrived three minutes ago
        await session.execute(update(MessageRow).values(created_at=utcnow() - timedelta(minutes=3)))
        await session.commit()
    world["sender"].sent.clear()

    resolver = TenantResolver(sessions)
    assert await inbox.recover(resolver.get) == 1
    await settle(world)
    assert world["sender"].sent == [("+15550009", "echo: where is my order?")]
    assert world["sender"].contexts[-1].reply_context == {"to": "+15005550006"}
    assert await inbox.recover(resolver.get) == 0  # claimed once, never twice


async def test_the_reply_goes_out_even_when_storing_it_fails(world: dict[str, Any]) -> None:
    inbox = world["inbox"]

    async def broken_store(*args: Any) -> int:
        raise RuntimeError("database is locked")

    inbox._relay.store_answers = broken_store  # type: ignore[method-assign]
    await inbox.accept(message(world, "hi", "SM-nostore"))
    await settle(world)
    assert world["sender"].sent == [("+15550001", "echo: hi")]


async def test_each_message_is_kept_once_while_redis_is_down(world: dict[str, Any]) -> None:
    import redis.asyncio as aioredis

    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.2)
    live = world["inbox"]
    inbox = Inbox(world["sessions"], live._relay, live._credentials, live._routes, redis=dead,
                  retry_wait=0.01)
    first = message(world, "hello", "SM-noredis")
    assert sorted(await asyncio.gather(*(inbox.accept(first) for _ in range(3)))) == [
        False, False, True]
    await inbox.drain(10)
    assert world["sender"].sent == [("+15550001", "echo: hello")]
    await dead.aclose()


async def test_turns_beyond_what_the_bot_takes_at_once_wait_then_give_up_politely(
        rasa_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connectors.rasa_client, "MAX_TURNS_IN_FLIGHT", 1)
    rasa = RasaClient(rasa_url, "t", 1.0, rasa_url)
    ScriptedRasa.most_in_flight = 0
    try:
        # Each turn takes 0.3 s and only one is sent at a time: the first three are answered
        # within the second the gateway waits; the fifth would wait longer and is refused.
        results = await asyncio.gather(*(rasa.turn(f"t:sms:{i}", "slow", {}) for i in range(5)),
                                       return_exceptions=True)
    finally:
        await rasa.aclose()
    assert [r[0]["text"] for r in results[:3]] == ["echo: slow"] * 3
    assert isinstance(results[4], UpstreamUnavailable) and "busy" in results[4].detail
    assert ScriptedRasa.most_in_flight == 1
