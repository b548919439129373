"""A web conversation as the widget shows it, read back from the stored messages.

`load_history` reads through the channel's `ChannelContext.history`; here that is the real
`core.conversations.recent_messages` over a migrated SQLite database, as in the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import async_sessionmaker

from connectors.channels import web
from connectors.channels.contract import ChannelContext
from connectors.channels.web.history import (
    MAX_BUTTONS,
    MAX_SOURCES,
    bot_messages,
    load_history,
    visitor_text,
)
from core.conversations import StoredMessage, recent_messages, record_message
from core.db import create_engine, session_factory
from core.settings import async_database_url
from tests.connectors.channels.harness import ChannelHarness
from tests.databases import migrated_url

SHOP_ID, OTHER_ID = "t-shop-0001", "t-other-0002"
MINE, THEIRS = f"{SHOP_ID}:web:aaa", f"{SHOP_ID}:web:bbb"
ORDER_BUTTONS = [{"title": "Order status", "payload": "/order_status"},
                 {"title": "Talk to a person", "payload": "/human_handoff"}]


@dataclass
class Store:
    sessions: async_sessionmaker
    ctx: ChannelContext

    async def add(self, sender: str, direction: str, text: str | None,
                  payload: dict[str, Any] | None = None, tenant: str = SHOP_ID,
                  at: datetime | None = None) -> None:
        await record_message(self.sessions, tenant_id=tenant, sender_id=sender, channel="web",
                             direction=direction, text=text, payload=payload, at=at)


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(async_database_url(migrated_url("sqlite", tmp_path)))
    sessions = session_factory(engine)

    async def history(tenant_id: str, sender_id: str, limit: int) -> list[StoredMessage]:
        return await recent_messages(sessions, tenant_id, sender_id, limit)

    try:
        yield Store(sessions, ChannelHarness(web.CHANNEL, "web", history=history).context)
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_history_is_this_conversation_only_in_order_and_limited(store: Store) -> None:
    await store.add(MINE, "in", "hi")
    await store.add(THEIRS, "in", "their secret")
    await store.add(MINE, "out", "Hello",
                    {"messages": [{"text": "Hello", "buttons": ORDER_BUTTONS}]})
    await store.add(MINE, "in", "/order_status", {"display_text": "Order status"})
    await store.add(MINE, "in", "<b>x</b>")
    await store.add(MINE, "in", "other tenant", tenant=OTHER_ID)
    history = await load_history(store.ctx, SHOP_ID, MINE)
    last_two = await load_history(store.ctx, SHOP_ID, MINE, limit=2)
    assert [(h["from"], h["text"]) for h in history] == [
        ("visitor", "hi"), ("bot", "Hello"), ("visitor", "Order status"), ("visitor", "<b>x</b>")]
    assert history[1]["buttons"] == ORDER_BUTTONS
    assert [h["text"] for h in last_two] == ["Order status", "<b>x</b>"]
    assert all(isinstance(h["at"], str) and datetime.fromisoformat(h["at"]) for h in history)


@pytest.mark.asyncio
async def test_a_reply_stored_late_is_shown_when_it_was_said(store: Store) -> None:
    said = datetime.now(UTC) - timedelta(seconds=5)
    await store.add(MINE, "in", "first", at=said - timedelta(seconds=1))
    await store.add(MINE, "in", "second", at=said + timedelta(seconds=1))
    await store.add(MINE, "out", "answer to first", {"messages": [{"text": "answer to first"}]},
                    at=said)  # stored after "second" arrived, as the inbox does
    history = await load_history(store.ctx, SHOP_ID, MINE)
    assert [h["text"] for h in history] == ["first", "answer to first", "second"]


@pytest.mark.asyncio
async def test_one_stored_reply_is_as_many_bubbles_as_bot_messages(store: Store) -> None:
    await store.add(MINE, "out", "You have 30 days.\nFAQ", {"messages": [
        {"recipient_id": MINE, "text": "You have 30 days."},
        {"recipient_id": MINE, "custom": {"knowledge": {"sources": [
            {"title": "Returns policy", "url": "https://shop.example/returns"}]}}},
        {"recipient_id": MINE, "text": "Anything else?", "buttons": ORDER_BUTTONS},
    ]})
    await store.add(MINE, "out", "Plain, stored without its messages")
    await store.add(MINE, "out", None, {"messages": "not a list"})
    history = await load_history(store.ctx, SHOP_ID, MINE)
    assert [{k: v for k, v in h.items() if k != "at"} for h in history] == [
        {"from": "bot", "text": "You have 30 days.",
         "sources": [{"title": "Returns policy", "url": "https://shop.example/returns"}]},
        {"from": "bot", "text": "Anything else?", "buttons": ORDER_BUTTONS},
        {"from": "bot", "text": "Plain, stored without its messages"},
    ]


@pytest.mark.asyncio
async def test_an_unknown_conversation_has_no_history(store: Store) -> None:
    await store.add(MINE, "in", "hi")
    assert await load_history(store.ctx, SHOP_ID, f"{SHOP_ID}:web:nobody") == []
    assert await load_history(store.ctx, OTHER_ID, MINE) == []


def test_bot_messages_keep_only_known_shapes() -> None:
    messages = bot_messages([
        {"recipient_id": "x", "text": "a\n\nb"},
        {"recipient_id": "x", "buttons": [{"title": "Yes", "payload": "/affirm"}, "junk",
                                          {"payload": "/no_title"}], "text": "Sure?"},
        {"recipient_id": "x", "image": "https://img.example/x.png"},
        {"recipient_id": "x", "custom": {"knowledge": {"sources": [{"title": "Doc", "url": 7}]}}},
        "not a message",  # type: ignore[list-item]  # Rasa sends dicts; this one is garbage
    ])
    assert messages == [
        {"text": "a\n\nb"},
        {"text": "Sure?", "buttons": [{"title": "Yes", "payload": "/affirm"}],
         "sources": [{"title": "Doc", "url": None}]},
    ]


def test_sources_before_any_text_stand_alone_and_lists_are_capped() -> None:
    many_sources = [{"title": f"Doc {i}", "url": f"https://d.example/{i}"} for i in range(20)]
    many_buttons = [{"title": f"B{i}"} for i in range(20)]
    messages = bot_messages([
        {"custom": {"knowledge": {"sources": many_sources}}},
        {"text": "Pick one", "buttons": many_buttons},
        {"custom": {"knowledge": {"sources": [{"url": "https://only.example/url"}]}}},
    ])
    assert messages[0] == {"text": "", "sources": many_sources[:MAX_SOURCES]}
    assert messages[1]["buttons"] == [{"title": f"B{i}", "payload": f"B{i}"}
                                      for i in range(MAX_BUTTONS)]  # no payload: the title
    assert messages[1]["sources"] == [{"title": "https://only.example/url",
                                       "url": "https://only.example/url"}]


@pytest.mark.parametrize(("text", "payload", "shown"), [
    ("/order_status", {"display_text": "Order status"}, "Order status"),
    ("/order_status", {"display_text": "   "}, "/order_status"),
    ("hi", None, "hi"),
    ("hi", {"display_text": 5}, "hi"),
    (None, None, ""),
])
def test_the_visitor_sees_what_they_sent(text: str | None, payload: dict[str, Any] | None,
                                         shown: str) -> None:
    assert visitor_text(text, payload) == shown
