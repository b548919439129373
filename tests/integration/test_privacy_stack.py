"""A visitor's data through the real stack: a REST visitor talks to the bot (Rasa stores its
tracker events, the gateway its messages), the owner exports everything stored about them by
the email they typed, erases it by the REST sender over the admin API, and nothing of theirs
is left in either store (asking again is a 404), while the bot answers the same sender
afresh, found again by the conversation id owners see."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from devtools.demo_shop import DEMO_TENANT_ID
from tests.integration.conftest import Visitor
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def owner(stack: Stack) -> Iterator[httpx.Client]:
    """The admin API with the demo shop's owner key (DEMO_OWNER_KEY)."""
    with stack.admin_client("owner") as client:
        yield client


def test_an_owner_exports_and_erases_a_visitor_across_our_tables_and_rasas(
        stack: Stack, owner: httpx.Client) -> None:
    email = f"privacy-{uuid.uuid4().hex[:8]}@example.com"
    visitor = Visitor(stack)
    assert visitor.say("hello")
    replies = len(visitor.replies)
    assert visitor.say(f"my email address is {email}")
    replies += len(visitor.replies)
    conversation = f"{DEMO_TENANT_ID}:rest:{visitor.sender}"

    # The bot's replies are stored once they are on their way (connectors/inbox.py
    # `_keep_copy`): the export shows the last one a moment after the visitor read it.
    deadline = time.monotonic() + 15
    while True:
        exported = owner.get("/privacy/export", params={"email": email.upper()})
        assert exported.status_code == 200, exported.text
        data = exported.json()
        if len(data["messages"]) == 2 + replies or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(data["messages"]) == 2 + replies, data["messages"]
    assert data["conversations"] == [conversation]
    [ident] = data["conversation_ids"]
    assert ident.startswith("c_")
    assert {m["direction"] for m in data["messages"]} == {"in", "out"}
    said = [e["data"].get("text") for e in data["tracker_events"] if e["type"] == "user"]
    assert f"my email address is {email}" in said  # Rasa's own record of the turn
    assert any(e["type"] == "bot" for e in data["tracker_events"])

    erased = owner.post("/privacy/erase", json={"sender": visitor.sender})
    assert erased.status_code == 200, erased.text
    deleted = erased.json()["deleted"]
    assert deleted["messages"] == len(data["messages"])
    assert deleted["tracker_events"] == len(data["tracker_events"])

    after = owner.get("/privacy/export", params={"email": email})
    assert after.status_code == 404 and "nothing is stored" in after.json()["detail"]
    again = owner.post("/privacy/erase", json={"email": email})
    assert again.status_code == 404 and "nothing is stored" in again.json()["detail"]

    # The same sender starts over: Rasa has no tracker for it any more and answers anyway.
    assert visitor.say("hello")
    fresh = owner.get("/privacy/export", params={"conversation": ident}).json()
    assert fresh["tracker_events"] and all(
        email not in str(e["data"]) for e in fresh["tracker_events"])

    audit = owner.get("/audit", params={"action": "privacy.erase"}).json()
    assert audit["total"] >= 2
    assert email not in str(audit) and visitor.sender not in str(audit)
