"""Through two real gateways (tests/connectors/handoff_stack.py) in production's setting
(ALLOW_PRIVATE_DESTINATIONS unset): a shop's stored callback URL whose name resolves to this
host (`localhost`, saved before the check existed or pointed there later) is refused when the
agent's reply is sent. The shop's server gets nothing, and the transcript's delivery says why
without telling whether anything listens there. About 1 s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from core import deliveries
from core.conversations import record_message
from devtools.demo_shop import DEMO_TENANT_ID
from tests.connectors.handoff_stack import AGENT, Stack, open_stack

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async for opened in open_stack("sqlite", tmp_path, callback_host="localhost",
                                   extra_env={"ALLOW_PRIVATE_DESTINATIONS": "false"}):
        yield opened


async def test_a_callback_name_resolving_to_loopback_is_refused_at_request_time(
        stack: Stack) -> None:
    assert await stack.rest("hi") == [{"recipient_id": "visitor-1", "text": "echo: hi"}]
    await stack.hand_to_person("rest", "visitor-1")
    sender = stack.sender("rest", "visitor-1")
    pk = await record_message(stack.sessions, tenant_id=DEMO_TENANT_ID, sender_id=sender,
                              channel="rest", direction="out", text="Sam here.",
                              payload={"agent": AGENT})
    answer = await stack.reply("rest", "visitor-1", "Sam here.", message_pk=pk)
    assert answer.status_code == 202
    await stack.settle()

    assert stack.callback.requests == []  # nothing reached the server behind `localhost`
    [*_, row] = await deliveries.deliveries_for(stack.sessions, DEMO_TENANT_ID, sender)
    assert (row.message_pk, row.status, row.attempts) == (pk, "failed", 1)  # not retried
    assert row.error_detail == ("callback not sent: its host resolves to a private network "
                                "address")
