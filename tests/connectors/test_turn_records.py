"""The gateway records what the bot made of each visitor message (intent, confidence, outcome)
on its row, for provider messages (answered in the background) and for REST/widget messages
(answered within the request), through the real inbox and a fake Rasa speaking our channel's
format (tests/fakes/rasa_server.py) over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.messages import InboundMessage
from connectors.rasa_client import BotTurn
from core.conversations import MessageRow
from tests.connectors.conftest import World

pytestmark = pytest.mark.asyncio


def understood(row: MessageRow) -> tuple[Any, ...]:
    return row.intent, row.confidence, row.outcome


async def inbound_rows(world: World) -> list[MessageRow]:
    return [row for row in await world.rows(MessageRow) if row.direction == "in"]


def rest(world: World, text: str, user: str) -> InboundMessage:
    return InboundMessage(tenant=world.tenant, provider="rest", channel="rest",
                          user_key=f"{user}-{world.run}", text=text)


async def test_a_provider_message_gets_its_intent_in_the_update_that_marks_it_handled(
        world: World) -> None:
    user = f"+1555{world.run}"
    for n, text in enumerate(["hello", "question: do you ship abroad?", "where is it",
                              "agent please", "are you there"]):
        await world.inbox.accept(world.message(text, f"SM-{n}", user=user))
        await world.settle()
    rows = await inbound_rows(world)
    assert [understood(row) for row in rows] == [
        ("greet", 0.98, "smalltalk"),
        ("ask_question", 0.93, "knowledge"),
        ("inform", 0.91, "flow"),
        ("human_handoff", 0.97, "handoff"),
        ("inform", 0.91, "handoff"),  # a person owns it: recorded, not answered
    ]
    assert all(row.handled_at is not None for row in rows)
    replies = [row for row in await world.rows(MessageRow) if row.direction == "out"]
    assert [row.payload["actions"] for row in replies] == [
        ["action_greet"], ["action_answer_from_knowledge"], ["action_echo"], ["action_handoff"]]
    # Nothing was sent for the paused turn; everything else was answered.
    assert [text for _, text in world.sender.sent] == [
        "echo: hello", "echo: question: do you ship abroad?", "echo: where is it",
        "echo: agent please"]


async def test_a_message_of_several_questions_is_recorded_by_its_weightiest_turn(
        world: World) -> None:
    await world.inbox.accept(world.message("hi. unknown question?", "SM-multi",
                                           questions=("hello", "unknown question?")))
    await world.settle()
    [row] = await inbound_rows(world)
    assert understood(row) == ("ask_question", 0.88, "abstained")


async def test_the_apology_records_nothing_understood(world: World) -> None:
    await world.inbox.accept(world.message("boom", "SM-boom"))
    await world.settle()
    [row] = await inbound_rows(world)
    assert row.handled_at is not None
    assert understood(row) == (None, None, None)


async def test_a_rest_turn_is_recorded_with_its_reply_after_the_answer(world: World) -> None:
    answer = await world.inbox.converse(rest(world, "gibberish", "v1"))
    assert answer == [{"recipient_id": f"{world.tenant.id}:rest:v1-{world.run}",
                       "text": "echo: gibberish"}]
    await world.settle()  # the record is written off the answer's path
    [visitor, bot] = await world.rows(MessageRow)
    assert understood(visitor) == ("nlu_fallback", 0.12, "fallback")
    assert (bot.direction, bot.text, understood(bot)) == ("out", "echo: gibberish",
                                                          (None, None, None))
    assert bot.payload["actions"] == ["action_answer_from_knowledge"]


async def test_a_paused_rest_conversation_is_recorded_without_a_reply(world: World) -> None:
    await world.inbox.converse(rest(world, "human", "v2"))
    assert await world.inbox.converse(rest(world, "where is my parcel", "v2")) == []
    await world.settle()
    rows = await world.rows(MessageRow)
    assert [(r.direction, r.outcome) for r in rows] == [("in", "handoff"), ("out", None),
                                                         ("in", "handoff")]


async def test_the_client_reads_both_channel_formats() -> None:
    plain = BotTurn.from_answer([{"text": "hi"}])
    assert plain.messages == [{"text": "hi"}] and plain.understood().outcome is None
    ours = BotTurn.from_answer({"messages": [], "turn": {
        "intent": "greet", "confidence": 1, "actions": [], "responses": [], "paused": True}})
    assert ours.understood().outcome == "handoff" and ours.confidence == 1.0
    with pytest.raises(ValueError):
        BotTurn.from_answer({"unexpected": True})
