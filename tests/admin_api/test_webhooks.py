"""Shops' webhooks: owners subscribe, a real local server receives the signed events, failed
tries are retried and logged, and two dispatchers racing send each event once (SQLite and
PostgreSQL). About 6 s for both databases."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, select

from admin_api import webhook_subscriptions, webhooks
from admin_api.routes.conversations import conversation_id
from admin_api.tables import AuditRow
from admin_api.webhook_tables import WebhookAttemptRow, WebhookDeliveryRow, WebhookRow
from core import handoffs
from core.db import create_engine, session_factory, utcnow
from core.destinations import Destinations, PrivateDestination
from core.handoffs import Agent
from tenants.crypto import CredentialsBox
from tests.admin_api.conftest import KEY, Admin
from tests.fakes import FakeServer, RecordedRequest, Response

ADA = Agent("user-ada", "Ada")


class ShopServer(FakeServer):
    """The shop's endpoint: checks our signature as the docs tell shops to (independently
    of admin_api/webhooks.py `verify`), answers 200, or 400 to a bad signature."""

    def __init__(self) -> None:
        super().__init__()
        self.secret = ""
        self.accepted: list[dict[str, Any]] = []

    def authorized(self, request: RecordedRequest) -> bool:
        fields = dict(item.split("=", 1)
                      for item in request.headers["x-switchboard-signature"].split(","))
        expected = hmac.new(self.secret.encode(), f"{fields['t']}.".encode() + request.body,
                            hashlib.sha256).hexdigest()
        return hmac.compare_digest(fields["v1"], expected)

    def unauthorized(self, request: RecordedRequest) -> Response:
        return 400, {}, {"error": "bad signature"}

    def route(self, request: RecordedRequest) -> Response:
        self.accepted.append(request.json())
        return 200, {}, {"ok": True}

    def events(self) -> list[dict[str, Any]]:
        """The payloads the shop accepted (signature good, not an injected failure)."""
        with self._lock:
            return list(self.accepted)


@pytest_asyncio.fixture
async def shop_server() -> AsyncIterator[ShopServer]:
    with ShopServer() as server:
        yield server


@pytest_asyncio.fixture
async def clean(admin: Admin) -> Admin:
    # tests/databases.py empties the tables it lists between PostgreSQL tests; these are
    # new, so a test starts from none of another test's subscriptions.
    async with admin.sessions() as session:
        for table in (WebhookAttemptRow, WebhookDeliveryRow, WebhookRow):
            await session.execute(delete(table))
        await session.commit()
    return admin


def dispatcher(admin: Admin, owner: str, sessions: Any = None) -> webhooks.Dispatcher:
    # The shop's server is on loopback here (admin.settings: ALLOW_PRIVATE_DESTINATIONS).
    return webhooks.Dispatcher(sessions or admin.sessions, CredentialsBox(KEY),
                               admin.settings.conversation_id_key, owner=owner,
                               destinations=admin.settings.destinations)


async def subscribe(admin: Admin, url: str, events: list[str]) -> dict[str, Any]:
    status, body = await admin.call("POST", "/webhooks", json={"url": url, "events": events})
    assert status == 201, body
    return body


async def handoff_story(admin: Admin, visitor: str) -> int:
    """A visitor asks for a person, Ada claims and resolves: three events; returns the
    handoff's id."""
    row, _ = await handoffs.open_handoff(
        admin.sessions, tenant_id=admin.demo.id, sender_id=f"{admin.demo.id}:web:{visitor}",
        channel="web", reason="visitor_asked", last_message="a person please")
    await handoffs.claim(admin.sessions, admin.demo.id, row.id, ADA)
    await handoffs.resolve(admin.sessions, admin.demo.id, row.id, ADA)
    return row.id


@pytest.mark.asyncio
async def test_every_event_gives_its_assignee_in_one_shape(clean: Admin) -> None:
    """A consumer reads `assignee` as {"id", "name"} whichever event carries it (the rating's
    was a bare id)."""
    admin = clean
    handoff_id = await handoff_story(admin, "visitor-rates")
    await handoffs.rating_asked(admin.sessions, handoff_id)
    sender = f"{admin.demo.id}:web:visitor-rates"
    assert await handoffs.take_rating(admin.sessions, admin.demo.id, sender, "5 stars!") == 5
    async with admin.sessions() as session:
        events = (await session.scalars(select(handoffs.ConversationEventRow).where(
            handoffs.ConversationEventRow.handoff_id == handoff_id))).all()
    assignees = {e.kind: e.data["assignee"] for e in events if "assignee" in e.data}
    assert assignees == {"handoff.claimed": {"id": "user-ada", "name": "Ada"},
                         "satisfaction.given": {"id": "user-ada", "name": "Ada"}}


# -- subscriptions -----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_an_owner_subscribes_sees_the_secret_once_and_unsubscribes(clean: Admin) -> None:
    admin = clean
    created = await subscribe(admin, "https://hooks.example.com/switchboard",
                              ["handoff.claimed", "handoff.requested"])
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["events"] == ["handoff.claimed", "handoff.requested"]

    status, listed = await admin.call("GET", "/webhooks")
    assert status == 200 and listed["total"] == 1
    assert listed["items"][0]["url"] == "https://hooks.example.com/switchboard"
    assert "secret" not in listed["items"][0]
    async with admin.sessions() as session:
        row = await session.get(WebhookRow, created["id"])
        audit = (await session.scalars(select(AuditRow).where(
            AuditRow.action.like("webhook.%")))).all()
    assert row is not None and secret.encode() not in row.secret_sealed  # sealed at rest
    assert [a.action for a in audit] == ["webhook.create"]
    assert secret not in json.dumps([a.after for a in audit])

    status, gone = await admin.call("DELETE", f"/webhooks/{created['id']}")
    assert status == 200 and gone["id"] == created["id"] and "secret" not in gone
    assert (await admin.call("GET", "/webhooks"))[1]["total"] == 0
    assert (await admin.call("DELETE", f"/webhooks/{created['id']}"))[0] == 404


@pytest.mark.asyncio
async def test_only_owners_manage_webhooks(clean: Admin) -> None:
    created = await subscribe(clean, "https://hooks.example.com/a", ["handoff.resolved"])
    for role in ("designer", "agent"):
        assert (await clean.call("GET", "/webhooks", role=role))[0] == 403
        assert (await clean.call("POST", "/webhooks", role=role, json={
            "url": "https://hooks.example.com/b", "events": ["handoff.resolved"]}))[0] == 403
        assert (await clean.call("DELETE", f"/webhooks/{created['id']}", role=role))[0] == 403
        assert (await clean.call("GET", f"/webhooks/{created['id']}/deliveries",
                                 role=role))[0] == 403


@pytest.mark.asyncio
async def test_another_shops_webhook_is_not_found(clean: Admin) -> None:
    status, theirs = await clean.call("POST", "/webhooks", shop=clean.other, json={
        "url": "https://other.example.com/hook", "events": ["handoff.requested"]})
    assert status == 201
    assert (await clean.call("GET", "/webhooks"))[1]["total"] == 0
    for path in (f"/webhooks/{theirs['id']}/deliveries", "/webhooks/nope/deliveries"):
        status, body = await clean.call("GET", path)
        assert status == 404 and body == {"detail": "no such webhook in your shop"}
    assert (await clean.call("DELETE", f"/webhooks/{theirs['id']}"))[0] == 404
    assert (await clean.call("GET", "/webhooks", shop=clean.other))[1]["total"] == 1


REFUSED = [
    ("http://hooks.example.com/x", ["handoff.claimed"]),  # plain http to another host
    ("https://user:pw@hooks.example.com/x", ["handoff.claimed"]),  # credentials in the URL
    ("ftp://hooks.example.com/x", ["handoff.claimed"]),
    ("hooks.example.com/x", ["handoff.claimed"]),
    ("https://hooks.example.com/x", ["message.visitor"]),  # not a webhook event
    ("https://hooks.example.com/x", []),
]


@pytest.mark.asyncio
async def test_unusable_urls_and_events_are_refused(clean: Admin) -> None:
    for url, events in REFUSED:
        status, body = await clean.call("POST", "/webhooks", json={"url": url,
                                                                   "events": events})
        assert status == 422 and body["detail"], (url, events, body)
    assert (await clean.call("GET", "/webhooks"))[1]["total"] == 0


def test_private_network_targets_only_in_development() -> None:
    production, development = Destinations(), Destinations(allow_private=True)
    for url in ("https://10.0.0.5/hook", "https://169.254.169.254/latest", "https://[::1]/x",
                "https://localhost/x", "https://printer.local/x", "http://127.0.0.1:8080/x",
                "https://127.1/x", "https://2130706433/x", "https://0177.0.0.1/x",
                "https://[::ffff:169.254.169.254]/latest"):
        with pytest.raises(webhook_subscriptions.BadUrl, match="private network"):
            webhook_subscriptions.check_url(url, production)
    assert webhook_subscriptions.check_url("http://127.0.0.1:8080/x", development)
    assert webhook_subscriptions.check_url("https://hooks.example.com/x?shop=1", production)


@pytest.mark.asyncio
async def test_a_public_looking_name_of_a_private_address_is_caught_at_the_try() -> None:
    name = socket.gethostname()  # a name, not an address: only resolving it tells
    addresses = {str(a[4][0]) for a in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
    if any(ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses):
        pytest.skip(f"{name} resolves to a public address here")
    async with Destinations().client() as client:
        with pytest.raises(PrivateDestination):
            await client.post(f"https://{name}/hooks")


def test_a_signature_verifies_only_for_its_body_secret_and_time() -> None:
    body, at = b'{"id":1}', 1_795_000_000
    header = webhooks.sign("whsec_a", body, at)
    assert webhooks.verify("whsec_a", body, header, now=at + 10)
    assert not webhooks.verify("whsec_b", body, header, now=at + 10)
    assert not webhooks.verify("whsec_a", b'{"id":2}', header, now=at + 10)
    assert not webhooks.verify("whsec_a", body, header, now=at + 3600)  # a replay


# -- delivery ----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_events_arrive_signed_a_failed_try_is_retried_and_logged(
        clean: Admin, shop_server: ShopServer) -> None:
    admin = clean
    await handoffs.open_handoff(  # before the subscription: never sent
        admin.sessions, tenant_id=admin.demo.id, sender_id=f"{admin.demo.id}:sms:+4915112345678",
        channel="sms", reason="visitor_asked", last_message="help")
    hook = await subscribe(admin, f"{shop_server.base_url}/hooks",
                           ["handoff.requested", "handoff.claimed", "handoff.resolved"])
    shop_server.secret = hook["secret"]
    handoff_id = await handoff_story(admin, "visitor-1")
    shop_server.fail_next(500)
    sending = dispatcher(admin, "one")
    now = utcnow()
    try:
        assert await sending.run_once(now) == 3
        events = shop_server.events()
        assert len(events) == 2 and len(shop_server.requests) == 3
        status, log = await admin.call("GET", f"/webhooks/{hook['id']}/deliveries")
        assert status == 200 and log["total"] == 3
        waiting = [d for d in log["items"] if d["status"] == "pending"]
        assert len(waiting) == 1 and waiting[0]["last_status"] == 500
        assert waiting[0]["error"] == "answered HTTP 500" and waiting[0]["next_attempt_at"]

        assert await sending.run_once(now + timedelta(seconds=5)) == 0  # not due yet
        assert await sending.run_once(now + timedelta(minutes=1)) == 1  # the retry
        assert await sending.run_once(now + timedelta(hours=2)) == 0  # nothing twice
    finally:
        await sending.stop()

    events = sorted(shop_server.events(), key=lambda e: e["id"])
    assert [e["type"] for e in events] == ["handoff.requested", "handoff.claimed",
                                           "handoff.resolved"]
    sender = f"{admin.demo.id}:web:visitor-1"
    for event in events:
        assert event["conversation_id"] == conversation_id(
            admin.settings.conversation_id_key, admin.demo.id, sender)
        assert event["channel"] == "web" and event["data"]["handoff_id"] == handoff_id
    assert events[1]["data"]["assignee"] == {"id": "user-ada", "name": "Ada"}
    for request in shop_server.requests:
        assert b"visitor-1" not in request.body and b"+4915112345678" not in request.body
        assert request.headers["content-type"] == "application/json"
        assert webhooks.verify(hook["secret"], request.body,
                               request.headers["x-switchboard-signature"])

    status, log = await admin.call("GET", f"/webhooks/{hook['id']}/deliveries")
    assert [d["status"] for d in log["items"]] == ["delivered"] * 3
    retried = next(d for d in log["items"] if d["attempts"] == 2)
    assert [t["http_status"] for t in retried["tries"]] == [500, 200]
    assert retried["tries"][0]["error"] == "answered HTTP 500"
    assert retried["tries"][1]["error"] is None and retried["last_status"] == 200
    assert all(len(d["tries"]) == d["attempts"] for d in log["items"])
    status, page = await admin.call("GET", f"/webhooks/{hook['id']}/deliveries",
                                    params={"page_size": 1, "page": 2})
    assert status == 200 and page["total"] == 3 and len(page["items"]) == 1


@pytest.mark.asyncio
async def test_a_server_that_never_accepts_is_given_up_after_a_day(
        clean: Admin, shop_server: ShopServer) -> None:
    hook = await subscribe(clean, f"{shop_server.base_url}/hooks", ["handoff.requested"])
    shop_server.secret = hook["secret"]
    await handoffs.open_handoff(
        clean.sessions, tenant_id=clean.demo.id, sender_id=f"{clean.demo.id}:web:v2",
        channel="web", reason="visitor_asked", last_message=None)
    shop_server.fail_next(503, times=3)
    sending = dispatcher(clean, "one")
    now = utcnow()
    try:
        assert await sending.run_once(now) == 1
        assert await sending.run_once(now + timedelta(hours=1)) == 1
        assert await sending.run_once(now + timedelta(hours=25)) == 1
        assert await sending.run_once(now + timedelta(hours=30)) == 0
    finally:
        await sending.stop()
    status, log = await clean.call("GET", f"/webhooks/{hook['id']}/deliveries")
    (delivery,) = log["items"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert delivery["next_attempt_at"] is None and delivery["last_status"] == 503
    assert shop_server.events() == []

    sending = dispatcher(clean, "later")
    try:  # a month on, what ended has left the log
        assert await sending.run_once(now + timedelta(days=31)) == 0
    finally:
        await sending.stop()
    assert (await clean.call("GET", f"/webhooks/{hook['id']}/deliveries"))[1]["total"] == 0


@pytest.mark.asyncio
async def test_production_never_posts_to_a_private_address(
        clean: Admin, shop_server: ShopServer) -> None:
    hook = await subscribe(clean, f"{shop_server.base_url}/hooks", ["handoff.requested"])
    await handoffs.open_handoff(
        clean.sessions, tenant_id=clean.demo.id, sender_id=f"{clean.demo.id}:web:v4",
        channel="web", reason="visitor_asked", last_message=None)
    sending = webhooks.Dispatcher(clean.sessions, CredentialsBox(KEY),
                                  clean.settings.conversation_id_key,
                                  destinations=Destinations())
    try:
        assert await sending.run_once() == 1
    finally:
        await sending.stop()
    assert shop_server.requests == []
    (delivery,) = (await clean.call("GET", f"/webhooks/{hook['id']}/deliveries"))[1]["items"]
    assert delivery["status"] == "pending" and delivery["last_status"] is None
    assert delivery["error"] == "the URL's host resolves to a private network address"


@pytest.mark.asyncio
async def test_an_unreachable_server_is_a_failed_try_not_a_crash(clean: Admin) -> None:
    with ShopServer() as gone:
        url = f"{gone.base_url}/hooks"
    hook = await subscribe(clean, url, ["handoff.requested"])
    await handoffs.open_handoff(
        clean.sessions, tenant_id=clean.demo.id, sender_id=f"{clean.demo.id}:web:v3",
        channel="web", reason="visitor_asked", last_message=None)
    sending = dispatcher(clean, "one")
    try:
        assert await sending.run_once() == 1
    finally:
        await sending.stop()
    (delivery,) = (await clean.call("GET", f"/webhooks/{hook['id']}/deliveries"))[1]["items"]
    assert delivery["status"] == "pending" and delivery["last_status"] is None
    assert delivery["error"] == "could not connect"


@pytest.mark.asyncio
async def test_two_dispatchers_racing_send_each_event_once(
        clean: Admin, shop_server: ShopServer) -> None:
    hook = await subscribe(clean, f"{shop_server.base_url}/hooks",
                           ["handoff.requested", "handoff.claimed", "handoff.resolved"])
    shop_server.secret = hook["secret"]
    for n in range(8):
        await handoff_story(clean, f"racer-{n}")
    engine = create_engine(clean.settings.database_url)  # the second process's own pool
    one = dispatcher(clean, "process-one")
    two = dispatcher(clean, "process-two", session_factory(engine))
    now = utcnow()
    tries = 0
    try:
        for step in range(3):  # both fan out and claim at once, pass after pass
            at = now + timedelta(seconds=step)
            tries += sum(await asyncio.gather(one.run_once(at), two.run_once(at)))
    finally:
        await one.stop()
        await two.stop()
        await engine.dispose()
    ids = [event["id"] for event in shop_server.events()]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert tries == 24 and len(shop_server.requests) == 24
    async with clean.sessions() as session:
        count = len((await session.scalars(select(WebhookDeliveryRow.id))).all())
    assert count == 24


@pytest.mark.asyncio
async def test_an_event_erased_before_its_try_is_not_sent(
        clean: Admin, shop_server: ShopServer) -> None:
    hook = await subscribe(clean, f"{shop_server.base_url}/hooks", ["handoff.requested"])
    await handoffs.open_handoff(
        clean.sessions, tenant_id=clean.demo.id, sender_id=f"{clean.demo.id}:web:v5",
        channel="web", reason="visitor_asked", last_message=None)
    sending = dispatcher(clean, "one")
    try:
        await sending.fan_out(utcnow())
        async with clean.sessions() as session:  # the visitor's erasure, say
            await session.execute(delete(handoffs.ConversationEventRow).where(
                handoffs.ConversationEventRow.tenant_id == clean.demo.id))
            await session.commit()
        assert await sending.run_once() == 1
        assert await sending.run_once(utcnow() + timedelta(hours=1)) == 0
    finally:
        await sending.stop()
    assert shop_server.requests == []
    (delivery,) = (await clean.call("GET", f"/webhooks/{hook['id']}/deliveries"))[1]["items"]
    assert delivery["status"] == "failed" and delivery["error"] == webhooks.ERASED
