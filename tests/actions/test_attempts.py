"""Brute force across senders is locked out: failed checks count per shop + client address, on
its own and with the email or the order number tried, whatever the sender id, the session or a
handoff, and per email and order number over every client (contested: fewer tries for each
client, never a lock for the customer's own right pair); on SQLite and on PostgreSQL (+ Redis
when it answers)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis
from sqlalchemy import select, update

from actions.attempts import (
    CONTESTED_LIMIT,
    LIMITS,
    LOCK,
    WINDOW,
    Attempts,
    VerificationFailureRow,
)
from actions.handoff import ActionHandoff
from actions.order_status import ValidateOrderStatusForm
from actions.runtime import Runtime
from actions.verification import STOP_LOCKED, client_of
from core.db import utcnow
from devtools.demo_shop import DEMO_TENANT_ID
from tests.actions.conftest import DOMAIN, tracker

pytestmark = pytest.mark.asyncio


async def attempt(number: str, email: str, *, user: str, client: str = "203.0.113.7",
                  channel: str = "rest") -> tuple[dict[str, Any], str]:
    """One visitor (sender `user`) giving `number` and `email` to the order status form."""
    t = tracker({"order_number": number}, user=user, text=email, given={"email": email},
                channel=channel, metadata={"client_address": client},
                active_loop="order_status_form", requested_slot="email")
    dispatcher = CollectingDispatcher()
    events = await ValidateOrderStatusForm().get_validation_events(dispatcher, t, DOMAIN)
    slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    return slots, " ".join(str(m.get("response") or m.get("text")) for m in dispatcher.messages)


async def test_walking_order_numbers_for_one_email_across_senders_is_locked(
        action_runtime: Runtime) -> None:
    # One client, a new sender for every try: each conversation would allow three.
    for n in range(LIMITS["client_email"] - 1):
        slots, said = await attempt(f"{2001 + n}", "sam@example.com", user=f"walker-{n}",
                                    client="198.51.100.1")
        assert "utter_order_not_found" in said and slots.get("flow_stop_reason") is None
    slots, said = await attempt("2999", "sam@example.com", user="walker-last",
                                client="198.51.100.1")
    assert "utter_verification_locked" in said
    assert slots["flow_stop_reason"] == STOP_LOCKED and slots["handoff_offered"] is True
    # Locked: even the right pair is not checked for that client, in any conversation.
    slots, said = await attempt("1002", "sam@example.com", user="walker-again",
                                client="198.51.100.1")
    assert "utter_verification_locked" in said and slots.get("verified_order") is None


async def test_failures_with_a_customers_email_do_not_lock_the_customer_out(
        action_runtime: Runtime) -> None:
    # Someone who knows Sam's email fails with it, from one address and then from many: the
    # email was locked for everyone on every channel, Sam included, for half an hour.
    for n in range(LIMITS["client_email"]):
        await attempt(f"{2001 + n}", "sam@example.com", user=f"pest-{n}", client="198.51.100.1")
    for n in range(LIMITS["email"]):
        await attempt(f"{2101 + n}", "sam@example.com", user=f"spread-{n}",
                      client=f"198.51.100.{10 + n}")
    # Sam, from his own address, with his order number: answered, on the web and by SMS.
    slots, said = await attempt("1002", "sam@example.com", user="sam", client="192.0.2.1")
    assert slots["verified_order"] == "1002" and "utter_verification_locked" not in said
    slots, _ = await attempt("1002", "sam@example.com", user="+15550001111", channel="sms",
                             client="+15550001111")
    assert slots["verified_order"] == "1002"
    # The contested email still guards Sam: one more address gets a typo's worth of tries.
    for n in range(CONTESTED_LIMIT - 1):
        slots, said = await attempt(f"{2201 + n}", "sam@example.com", user=f"late-{n}",
                                    client="198.51.100.99")
        assert "utter_order_not_found" in said
    slots, said = await attempt("2299", "sam@example.com", user="late-last",
                                client="198.51.100.99")
    assert "utter_verification_locked" in said
    # Another customer's email is not touched by any of it.
    slots, said = await attempt("1001", "alex@example.com", user="alex", client="198.51.100.99")
    assert slots["verified_order"] == "1001"


async def test_walking_emails_against_one_order_locks_the_walker_not_the_owner(
        action_runtime: Runtime) -> None:
    for n in range(LIMITS["client_order"]):
        slots, said = await attempt("1001", f"guess{n}@example.org", user=f"g-{n}",
                                    client="198.51.100.1")
    assert "utter_verification_locked" in said
    assert "utter_verification_locked" in (await attempt(
        "1001", "alex@example.com", user="g-right", client="198.51.100.1"))[1]
    slots, said = await attempt("1001", "alex@example.com", user="alex", client="192.0.2.2")
    assert slots["verified_order"] == "1001"
    # The order is contested now: a new address fails CONTESTED_LIMIT times, then waits.
    for n in range(CONTESTED_LIMIT):
        slots, said = await attempt("1001", f"more{n}@example.org", user=f"m-{n}",
                                    client="198.51.100.2")
    assert "utter_verification_locked" in said


async def test_one_client_trying_many_pairs_is_locked(action_runtime: Runtime) -> None:
    for n in range(LIMITS["client"]):
        slots, said = await attempt(f"{3001 + n}", f"guess{n}@example.org", user=f"c-{n}")
    assert "utter_verification_locked" in said
    # From the same address even a right pair waits; from another it is answered.
    assert "utter_verification_locked" in (await attempt("1001", "alex@example.com",
                                                         user="c-x"))[1]
    slots, _ = await attempt("1001", "alex@example.com", user="c-y", client="192.0.2.9")
    assert slots["verified_order"] == "1001"


async def test_a_handoff_does_not_reset_the_count(action_runtime: Runtime) -> None:
    for n in range(LIMITS["client_email"] - 1):
        await attempt(f"{4001 + n}", "kim@example.com", user="h", client="198.51.100.5")
    t = tracker({"verification_failures": 3.0}, user="h", text="a person please")
    events = await ActionHandoff().run(CollectingDispatcher(), t, DOMAIN)
    assert "verification_failures" not in {e.get("name") for e in events}
    slots, said = await attempt("4999", "kim@example.com", user="h-restarted",
                                client="198.51.100.5")
    assert "utter_verification_locked" in said


async def test_counts_are_keyed_hashes_and_the_lock_ends(action_runtime: Runtime) -> None:
    attempts: Attempts = action_runtime.attempts
    check = attempts.check(DEMO_TENANT_ID, email="Sam@Example.com ", order_number="1002",
                           client="198.51.100.1")
    assert [s.kind for s in check.subjects] == [
        "email", "order", "client", "client_email", "client_order"]
    assert all(len(s.key) == 64 and "sam" not in s.key for s in check.subjects)
    assert attempts.check(DEMO_TENANT_ID, email="sam@example.com", order_number="1002",
                          client="198.51.100.1") == check
    assert attempts.check("other-shop", email="sam@example.com", order_number="1002",
                          client="198.51.100.1").subjects[0] != check.subjects[0]
    lockout = None
    for _ in range(LIMITS["client_email"]):
        lockout = await attempts.failed(check)
    assert lockout is not None and 25 <= lockout.minutes_left() <= 30
    assert await attempts.locked(check) is not None


async def test_database_counts_when_redis_is_not_configured(action_runtime: Runtime) -> None:
    attempts = Attempts(action_runtime.sessions, b"k" * 32)  # no Redis: the table
    check = attempts.check(DEMO_TENANT_ID, email="sam@example.com", order_number="1002",
                           client=None)
    for _ in range(LIMITS["email"] - 1):
        assert await attempts.failed(check) is None
    async with action_runtime.sessions() as session:
        rows = (await session.execute(select(VerificationFailureRow))).scalars().all()
    assert {r.key for r in rows} == {s.key for s in check.subjects}
    assert all(r.failures == LIMITS["email"] - 1 and r.tenant_id == DEMO_TENANT_ID for r in rows)
    # A window that ended starts over.
    async with action_runtime.sessions.begin() as session:
        await session.execute(update(VerificationFailureRow).values(
            window_started_at=utcnow() - WINDOW - timedelta(seconds=1)))
    assert await attempts.failed(check) is None
    for _ in range(LIMITS["email"] - 1):
        lockout = await attempts.failed(check)
    assert lockout is not None and await attempts.locked(check) is not None
    # The lock ends by itself.
    async with action_runtime.sessions.begin() as session:
        await session.execute(update(VerificationFailureRow).values(
            locked_until=utcnow() - timedelta(seconds=1)))
    assert await attempts.locked(check) is None
    assert LOCK < WINDOW


async def test_the_client_address_comes_from_the_gateway(action_runtime: Runtime) -> None:
    assert client_of(tracker(metadata={"client_address": "198.51.100.4"})) == "198.51.100.4"
    assert client_of(tracker(user="+15551234567", channel="sms")) == "+15551234567"
    assert client_of(tracker(user="me")) is None  # REST without the gateway's word


async def test_a_redis_outage_falls_back_to_the_database(action_runtime: Runtime) -> None:
    attempts = Attempts(action_runtime.sessions, b"k" * 32,
                        Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5))
    check = attempts.check(DEMO_TENANT_ID, email="sam@example.com", order_number="1002",
                           client=None)
    for _ in range(LIMITS["email"]):
        lockout = await attempts.failed(check)
    assert lockout is not None and await attempts.locked(check) is not None
    await attempts.aclose()
