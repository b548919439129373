"""The inbox: provider messages accepted once, answered in the background in order, choices
read back, several questions in one reply, apologies instead of silence, crash recovery; and
messages answered within the request (REST, widget)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

import connectors.rasa_client
from connectors.errors import UpstreamUnavailable
from connectors.inbox import (
    APOLOGY,
    APOLOGY_RESPONSE,
    CARD_WARNING,
    CARD_WARNING_RESPONSE,
    MEDIA_PAYLOAD,
    Inbox,
)
from connectors.messages import Media
from connectors.rasa_client import BotTurn, RasaClient
from core import conversations
from core.conversations import MessageRow
from core.settings import Secret
from tenants.texts import domain_texts, store_override
from tests.connectors.conftest import World
from tests.fakes.rasa_server import RasaFake
from tests.servers import free_port

pytestmark = pytest.mark.asyncio


async def test_accepts_once_and_answers_in_the_background(world: World) -> None:
    first = world.message("hello", "SM-dup-1")
    results = await asyncio.gather(*(world.inbox.accept(first) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    await world.settle()
    assert world.sender.sent == [("+15550001", "echo: hello")]
    stored = [(m.direction, m.text) for m in await world.rows(MessageRow)]
    assert stored == [("in", "hello"), ("out", "echo: hello")]
    assert all(m.handled_at is not None for m in await world.rows(MessageRow)
               if m.direction == "in")


async def test_messages_of_one_conversation_are_answered_in_order(world: World) -> None:
    for i in range(6):
        assert await world.inbox.accept(world.message(f"m{i}", f"SM-order-{i}"))
    await world.settle()
    assert [part for _, part in world.sender.sent] == [f"echo: m{i}" for i in range(6)]


async def test_a_numbered_reply_picks_the_offered_choice(world: World) -> None:
    await world.inbox.accept(world.message("offer", "SM-c-1"))
    await world.settle()
    await world.inbox.accept(world.message("2", "SM-c-2"))
    await world.settle()
    await world.inbox.accept(world.message("yes please", "SM-c-3"))  # by title, after no offer
    await world.settle()
    assert world.rasa.texts() == ["offer", "/deny", "yes please"]


async def test_media_without_text_reaches_the_bot_as_an_intent_with_urls(world: World) -> None:
    media = (Media("https://media.example/1.jpg", "image/jpeg"),)
    await world.inbox.accept(world.message("", "SM-media", media=media))
    await world.settle()
    seen = world.rasa.seen[-1]
    assert seen["message"] == MEDIA_PAYLOAD
    assert seen["metadata"]["media"] == [{"url": "https://media.example/1.jpg",
                                          "content_type": "image/jpeg"}]


async def test_several_questions_get_one_reply(world: World) -> None:
    await world.inbox.accept(world.message("q1? q2?", "SM-q", questions=("q1?", "q2?")))
    await world.settle()
    assert world.rasa.texts() == ["q1?", "q2?"]
    assert len(world.sender.contexts) == 1  # one rendering for both answers
    [_, reply] = await world.rows(MessageRow)
    assert reply.payload["questions"] == ["q1?", "q2?"]


async def test_bot_error_is_tried_again_then_apologised_for(world: World) -> None:
    await world.inbox.accept(world.message("boom", "SM-boom"))
    await world.settle()
    # Not marked handled with an apology at the first error: tried again after each wait of
    # the inbox's retry_after (two here), and the third failure gets the apology, once.
    assert world.rasa.texts() == ["boom"] * 3
    assert world.sender.sent == [("+15550001", APOLOGY)]
    [message, _] = await world.rows(MessageRow)
    assert message.handled_at is not None and message.attempts == 3


async def test_the_apology_is_said_in_the_shops_words(world: World) -> None:
    """A shop that reworded utter_trouble_answering (admin API) apologises in its words."""
    await store_override(world.sessions, world.tenant.id, APOLOGY_RESPONSE,
                         [{"text": "Our bot is napping; text us again soon."}], actor="test")
    await world.inbox.accept(world.message("boom", "SM-boom-own-words"))
    await world.settle()
    assert world.sender.sent == [("+15550001", "Our bot is napping; text us again soon.")]


def test_the_apology_is_the_domains_default_text() -> None:
    [variant] = domain_texts().responses[APOLOGY_RESPONSE]
    assert variant["text"] == APOLOGY


def test_the_card_warning_is_the_domains_default_text() -> None:
    [variant] = domain_texts().responses[CARD_WARNING_RESPONSE]
    assert variant["text"] == CARD_WARNING


CARD = "4111 1111 1111 1111"


async def test_a_card_number_is_warned_about_once_before_the_answers(world: World) -> None:
    # Whatever answers in Rasa (here an echo), the gateway that masked the number says it,
    # once for the message, before the answer to the question that held it.
    questions = ("where is my order?", f"my card is {CARD}, was I charged?",
                 f"and {CARD} again?")
    await world.inbox.accept(world.message(" ".join(questions), "SM-card", questions=questions))
    await world.settle()
    assert all(CARD not in text for text in world.rasa.texts())
    [_, reply] = await world.rows(MessageRow)
    texts = [m.get("text", "") for m in reply.payload["messages"]]
    assert [t for t in texts if t == CARD_WARNING] == [CARD_WARNING]
    assert texts.index(CARD_WARNING) == 1  # after the first answer, before the second's
    assert texts[0] == "echo: where is my order?"


async def test_a_conversation_hears_the_card_warning_in_the_shops_words(world: World) -> None:
    await store_override(world.sessions, world.tenant.id, CARD_WARNING_RESPONSE,
                         [{"text": "No card numbers here, please!"}], actor="test")
    message = world.message(f"thanks, paid with {CARD}", "web-card", channel="web")
    said = [m["text"] for m in await world.inbox.converse(message) or []]
    assert said == ["No card numbers here, please!", "echo: thanks, paid with **** **** **** 1111"]
    plain = world.message("thanks", "web-plain", channel="web")
    assert [m["text"] for m in await world.inbox.converse(plain) or []] == ["echo: thanks"]


async def test_a_turn_that_fails_is_answered_on_the_retry(world: World) -> None:
    failures = [UpstreamUnavailable("The bot did not answer in time; please try again.")]

    class FlakyRasa(RasaClient):
        async def turn(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
            if failures:
                raise failures.pop()
            return await super().turn(sender_id, text, metadata)

    flaky = FlakyRasa(world.rasa.base_url, Secret("t"), 5.0, world.rasa.base_url)
    inbox = Inbox(world.sessions, flaky, world.outbox, retry_wait=0.01, retry_after=(0.05,))
    await inbox.accept(world.message("hello", "SM-flaky"))
    async with asyncio.timeout(10):
        while inbox.busy:
            await asyncio.sleep(0.01)
    await flaky.aclose()
    assert world.sender.sent == [("+15550001", "echo: hello")]  # no apology


async def test_unreachable_bot_is_retried_then_apologised_for(world: World) -> None:
    attempts: list[str] = []

    class CountingRasa(RasaClient):
        async def turn(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
            attempts.append(text)
            return await super().turn(sender_id, text, metadata)

    down = CountingRasa(f"http://127.0.0.1:{free_port()}", Secret("t"), 2.0, "http://127.0.0.1:9")
    inbox = Inbox(world.sessions, down, world.outbox, retry_wait=0.01, retry_after=())
    await inbox.accept(world.message("hello", "SM-down"))
    await inbox.drain(10)
    await down.aclose()
    assert attempts == ["hello"] * 3  # nothing reached Rasa: trying again at once is safe
    assert world.sender.sent == [("+15550001", APOLOGY)]  # no retry left: the apology


async def test_a_failure_of_our_own_is_retried_not_marked_handled(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = world.outbox.send
    failures = [RuntimeError("database is locked")]

    async def send_once_failing(*args: Any, **kw: Any) -> None:
        if failures:
            raise failures.pop()
        await real(*args, **kw)

    monkeypatch.setattr(world.outbox, "send", send_once_failing)
    await world.inbox.accept(world.message("hi", "SM-hiccup"))
    await world.settle()
    assert world.sender.sent == [("+15550001", "echo: hi")]
    [message, *_] = await world.rows(MessageRow)
    assert message.handled_at is not None and message.attempts == 2


async def test_messages_stored_under_a_former_provider_name_are_recovered(
        world: World) -> None:
    """Email was stored as provider "mailgun"/"sendgrid" before the channel registry."""
    stored = world.message("hello", "SM-legacy").stored_payload()
    from connectors.messages import InboundMessage
    again = InboundMessage.from_stored(world.tenant, f"{world.tenant.id}:email:a@b.example",
                                       "hi", "<m@x>", {**stored, "provider": "sendgrid"})
    assert (again.provider, again.channel, again.user_key) == ("email", "email", "a@b.example")


async def test_the_reply_goes_out_even_when_storing_it_fails(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = conversations.record_message

    async def no_replies(*args: Any, **kw: Any) -> int:
        if kw.get("direction") == "out":
            raise RuntimeError("database is locked")
        return await real(*args, **kw)

    monkeypatch.setattr(conversations, "record_message", no_replies)
    await world.inbox.accept(world.message("hi", "SM-nostore"))
    await world.settle()
    assert world.sender.sent == [("+15550001", "echo: hi")]


async def test_each_message_is_kept_once_while_redis_is_down(world: World) -> None:
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.2)
    client = RasaClient(world.rasa.base_url, Secret("t"), 5.0, world.rasa.base_url)
    inbox = Inbox(world.sessions, client, world.outbox, redis=dead, retry_wait=0.01)
    first = world.message("hello", "SM-noredis")
    assert sorted(await asyncio.gather(*(inbox.accept(first) for _ in range(3)))) == [
        False, False, True]
    await inbox.drain(10)
    assert world.sender.sent == [("+15550001", "echo: hello")]
    await dead.aclose()
    await client.aclose()


async def test_a_provider_without_a_sender_is_refused(world: World) -> None:
    message = world.message("hi", "SM-nosender")
    with pytest.raises(ValueError, match="no sender"):
        await world.inbox.accept(type(message)(**{**message.__dict__, "provider": "pigeon"}))


# -- messages answered within the request (REST, widget) --------------------------------------


async def test_converse_stores_both_sides_and_answers(world: World) -> None:
    message = world.message("hi there", "web-1", channel="web")
    assert await world.inbox.converse(message) == [
        {"recipient_id": message.sender_id, "text": "echo: hi there"}]
    await world.settle()
    stored = [(m.direction, m.text) for m in await world.rows(MessageRow)]
    assert stored == [("in", "hi there"), ("out", "echo: hi there")]
    assert await world.inbox.converse(message) is None  # the same id again: handled once
    assert world.rasa.texts() == ["hi there"]


async def test_a_turn_goes_on_when_its_visitor_leaves(world: World) -> None:
    message = world.message("slow", "web-leave", channel="web")
    turn = asyncio.create_task(world.inbox.converse(message))
    await asyncio.sleep(0.1)
    turn.cancel()  # the visitor closed the tab mid-turn
    await world.settle()
    stored = [(m.direction, m.text) for m in await world.rows(MessageRow)]
    assert stored == [("in", "slow"), ("out", "echo: slow")]  # the history has the answer


async def test_turns_beyond_what_the_bot_takes_at_once_wait_then_give_up_politely(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connectors.rasa_client, "MAX_TURNS_IN_FLIGHT", 1)
    with RasaFake() as fake:
        rasa = RasaClient(fake.base_url, Secret("t"), 1.0, fake.base_url)
        try:
            # Each turn takes 0.3 s and only one is sent at a time: the first three are
            # answered within the second the gateway waits; the fifth would wait longer.
            results = await asyncio.gather(
                *(rasa.turn(f"t:sms:{i}", "slow", {}) for i in range(5)), return_exceptions=True)
        finally:
            await rasa.aclose()
        assert fake.most_in_flight == 1
    answered = [r for r in results if isinstance(r, BotTurn)]
    assert [r.messages[0]["text"] for r in answered[:3]] == ["echo: slow"] * 3
    assert isinstance(results[4], UpstreamUnavailable) and "busy" in results[4].detail
