"""Verification is a short-lived fact of one conversation: the takeover of a sender id fails.

A visitor on REST sender `me` verifies order #1002 with sam@example.com; whoever posts as `me`
after the shop's quiet period, or in a new session, must prove the order again."""

from __future__ import annotations

import time
from typing import Any

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import update

from actions.order_status import ActionOrderStatus, ValidateOrderStatusForm
from actions.runtime import Runtime
from actions.session import ActionSessionStart
from actions.verification import VERIFIED_AT, verified_order
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.models import TenantRow
from tests.actions.conftest import DOMAIN, tracker
from tests.actions.rendered import rendered as said

pytestmark = pytest.mark.asyncio

MINUTE = 60.0


def proved(minutes_ago: float) -> dict[str, Any]:
    """Slots of a conversation that verified #1002 with sam@example.com `minutes_ago`."""
    return {"verified_order": "1002", "email": "sam@example.com",
            VERIFIED_AT: time.time() - minutes_ago * MINUTE}


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


async def validate(t: Any) -> tuple[dict[str, Any], CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = await ValidateOrderStatusForm().get_validation_events(dispatcher, t, DOMAIN)
    return slot_events(events), dispatcher


async def test_the_order_number_alone_reveals_nothing_after_the_quiet_period(
        action_runtime: Runtime) -> None:
    # "where is my order?" -> "1002", 31 minutes after the visitor verified it.
    t = tracker(proved(31), text="1002", given={"order_number": "1002"},
                active_loop="order_status_form", requested_slot="order_number")
    slots, dispatcher = await validate(t)
    assert slots["verified_order"] is None and slots[VERIFIED_AT] is None
    assert slots["email"] is None  # the form asks for the email again
    assert "1002" not in said(dispatcher) and "DHL" not in said(dispatcher)
    assert await verified_order(tracker({**proved(31), "order_number": "1002"})) is None


async def test_within_the_quiet_period_the_proof_still_holds(action_runtime: Runtime) -> None:
    t = tracker(proved(5), text="1002", given={"order_number": "1002"},
                active_loop="order_status_form", requested_slot="order_number")
    slots, _ = await validate(t)
    assert slots["verified_order"] == "1002" and slots[VERIFIED_AT] > time.time() - 5
    found = await verified_order(tracker({**proved(5), "order_number": "1002"}))
    assert found is not None and found[1].number == "1002"


async def test_the_quiet_period_is_the_shops_setting(action_runtime: Runtime) -> None:
    async with action_runtime.sessions.begin() as session:
        await session.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID)
                              .values(verification_expiry_minutes=5))
    assert await verified_order(tracker({**proved(6), "order_number": "1002"})) is None
    assert await verified_order(tracker({**proved(4), "order_number": "1002"})) is not None


async def test_a_proof_without_a_time_is_stale(action_runtime: Runtime) -> None:
    slots = {"verified_order": "1002", "email": "sam@example.com", "order_number": "1002"}
    assert await verified_order(tracker(slots)) is None


async def test_an_email_given_now_is_kept_when_the_old_proof_goes(
        action_runtime: Runtime) -> None:
    t = tracker({**proved(45), "order_number": "1002"}, text="sam@example.com",
                given={"email": "sam@example.com"}, active_loop="order_status_form",
                requested_slot="email")
    slots, _ = await validate(t)
    # Proved again with what the visitor just typed: verified anew, a new quiet period.
    assert slots["verified_order"] == "1002" and slots[VERIFIED_AT] > time.time() - 5


async def test_the_status_answer_needs_a_fresh_proof(action_runtime: Runtime) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionOrderStatus().run(
        dispatcher, tracker({**proved(31), "order_number": "1002"}), DOMAIN)
    assert "JD014600006281230704" not in said(dispatcher)  # order 1002's tracking number
    dispatcher = CollectingDispatcher()
    events = await ActionOrderStatus().run(
        dispatcher, tracker({**proved(1), "order_number": "1002"}), DOMAIN)
    assert "JD014600006281230704" in said(dispatcher)
    assert slot_events(events)[VERIFIED_AT] > time.time() - 5  # used: the period restarts


async def test_a_new_session_carries_no_proof_and_no_flow_over(action_runtime: Runtime) -> None:
    t = tracker({**proved(1), "order_number": "1002", "return_items": ["Scarf"],
                 "handoff_requested": True})
    events = await ActionSessionStart().run(CollectingDispatcher(), t, DOMAIN)
    carried = slot_events(events)
    for slot in ("verified_order", "email", VERIFIED_AT, "order_number", "return_items"):
        assert slot not in carried
    assert carried["tenant_id"] == DEMO_TENANT_ID and carried["handoff_requested"] is True
