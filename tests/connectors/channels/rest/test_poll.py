"""The REST poll (GET /channels/<shop>/rest/messages) through a real gateway on a real
database (tests/connectors/handoff_stack.py): each message its own id, and `after` as a cursor
that lists each message once, also from a row id a client kept from before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from core.conversations import MessageRow
from tests.connectors.handoff_stack import SLUG, Stack, open_stack
from tests.databases import database_params

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(params=database_params())
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    async for opened in open_stack(request.param, tmp_path):
        yield opened


async def poll(stack: Stack, after: int | str = 0) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{stack.a}/channels/{SLUG}/rest/messages",
                                  params={"sender": "visitor-1", "after": after},
                                  headers={"Authorization": f"Bearer {stack.rest_key}"})
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()
    return listed


async def test_two_messages_of_one_turn_have_their_own_ids_and_the_cursor_lists_each_once(
        stack: Stack) -> None:
    assert [m["text"] for m in await stack.rest("long")] == ["part 1", "part 2"]
    await stack.settle()
    first = await poll(stack)
    assert [m["text"] for m in first] == ["part 1", "part 2"]
    assert first[0]["id"] != first[1]["id"]  # a client that dedupes by id shows both
    assert all(isinstance(m["id"], int) for m in first)
    assert [m["text"] for m in await poll(stack, first[0]["id"])] == ["part 2"]
    assert await poll(stack, first[-1]["id"]) == []
    assert await poll(stack) == first  # the same ids on every poll

    seen = list(first)
    for text in ("hi", "long"):
        await stack.rest(text)
        await stack.settle()
        seen += await poll(stack, seen[-1]["id"])
    assert [m["text"] for m in seen] == ["part 1", "part 2", "echo: hi", "part 1", "part 2"]
    assert len({m["id"] for m in seen}) == 5
    assert await poll(stack, seen[-1]["id"]) == []


async def test_a_row_id_kept_from_before_still_means_after_that_whole_turn(
        stack: Stack) -> None:
    """Before, every message of a turn carried its stored row's id; clients kept those."""
    await stack.rest("long")
    await stack.rest("hi")
    await stack.settle()
    async with stack.sessions() as session:
        rows = (await session.execute(select(MessageRow.id).where(
            MessageRow.direction == "out").order_by(MessageRow.id))).scalars().all()
    assert len(rows) == 2
    assert [m["text"] for m in await poll(stack, rows[0])] == ["echo: hi"]
    assert await poll(stack, rows[1]) == []


async def test_a_cursor_that_is_not_an_id_is_400(stack: Stack) -> None:
    async with httpx.AsyncClient() as client:
        for after in ("-1", "1.5", "x", "9" * 19):
            answer = await client.get(f"{stack.a}/channels/{SLUG}/rest/messages",
                                      params={"sender": "visitor-1", "after": after},
                                      headers={"Authorization": f"Bearer {stack.rest_key}"})
            assert answer.status_code == 400 and "'after'" in answer.json()["detail"]
