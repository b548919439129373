"""The shop's texts over the admin API, and what Rasa's NLG endpoint then says.

A designer changes a response, the NLG endpoint (what Rasa asks for every message) says the new
text at once for that shop only; deleting the override brings the default back. Broken
templates are refused; agents may not change texts.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from admin_api.tables import AuditRow
from admin_api.training.models import ModelVersionRow, set_active
from tenants.texts import OverrideCache, domain_texts
from tests.admin_api.conftest import Admin
from tests.servers import serving

pytestmark = pytest.mark.asyncio

GREET = "Hi! I'm the shop's assistant."  # the domain's utter_greet
STOPPED = "No problem, I've stopped that."  # the domain's utter_cancelled
NEW = {"variants": [{"text": "Welcome to our shop, how can I help?", "channel": None,
                     "buttons": [{"title": "Track my order", "payload": "/check_order_status"}]}]}


async def say(admin: Admin, response: str, shop_id: str | None = None, channel: str = "web",
              token: str | None = "valid", **body: Any) -> tuple[int, Any]:
    """Ask the NLG endpoint as bot/nlg.py does (slim body) for one message."""
    token = admin.settings.nlg_token.reveal() if token == "valid" else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = {"response": response, "arguments": {}, "channel": {"name": "collector"},
               "sender_id": f"{shop_id or admin.demo.id}:{channel}:visitor-1",
               "slots": {"tenant_id": shop_id or admin.demo.id}, **body}
    _, reply = await admin.client.post("/nlg", json=payload, headers=headers)
    return reply.status, (reply.json if reply.body else None)


async def test_a_designer_changes_a_text_and_the_next_message_says_it(admin: Admin) -> None:
    status, before = await say(admin, "utter_cancelled")
    assert status == 200 and before["text"].startswith(STOPPED)

    status, body = await admin.call("PUT", "/responses/utter_cancelled", role="designer", json=NEW)
    assert status == 200
    assert body["override"] == NEW["variants"] and body["effective"] == NEW["variants"]
    assert body["default"][0]["text"].startswith(STOPPED)

    status, message = await say(admin, "utter_cancelled")
    assert status == 200
    assert message == {"text": "Welcome to our shop, how can I help?",
                       "buttons": [{"title": "Track my order",
                                    "payload": "/check_order_status"}]}
    # The other shop still hears the default.
    other_shop = await say(admin, "utter_cancelled", shop_id=admin.other.id)
    assert other_shop[1]["text"].startswith(STOPPED)

    status, restored = await admin.call("DELETE", "/responses/utter_cancelled", role="designer")
    assert status == 200 and restored["override"] is None
    assert (await say(admin, "utter_cancelled"))[1]["text"].startswith(STOPPED)


async def test_the_owners_greeting_setting_is_the_shops_greeting_under_a_designers_text(
        admin: Admin) -> None:
    """One greeting wins wherever it was set: a designer's override of utter_greet, else the
    owner's greeting setting, else the domain's text; the response list shows which."""
    status, _ = await admin.call("PATCH", "/settings", json={"greeting": "Hello from Demo!"})
    assert status == 200
    assert (await say(admin, "utter_greet"))[1] == {"text": "Hello from Demo!"}
    _, listed = await admin.call("GET", "/responses/utter_greet", role="designer")
    assert listed["default"][0]["text"] == "Hello from Demo!" and listed["override"] is None

    await admin.call("PUT", "/responses/utter_greet", role="designer", json=NEW)
    assert (await say(admin, "utter_greet"))[1]["text"] == NEW["variants"][0]["text"]
    await admin.call("DELETE", "/responses/utter_greet", role="designer")
    assert (await say(admin, "utter_greet"))[1] == {"text": "Hello from Demo!"}

    await admin.call("PATCH", "/settings", json={"greeting": None})
    assert (await say(admin, "utter_greet"))[1]["text"].startswith(GREET)
    assert (await say(admin, "utter_greet", shop_id=admin.other.id))[1]["text"].startswith(GREET)


async def test_the_list_shows_every_response_with_default_override_and_placeholders(
        admin: Admin) -> None:
    await admin.call("PUT", "/responses/utter_order_not_found", json={"variants": [
        {"text": "No match. Try {attempt} of {max_attempts}.", "channel": None, "buttons": []},
        {"text": "No match ({attempt}/{max_attempts})", "channel": "sms", "buttons": []}]})
    status, page = await admin.call("GET", "/responses", role="designer")
    assert status == 200 and page["total"] == len(page["items"]) >= 20
    by_name = {item["name"]: item for item in page["items"]}
    assert by_name["utter_goodbye"]["override"] is None
    assert len(by_name["utter_goodbye"]["effective"]) == 2
    changed = by_name["utter_order_not_found"]
    assert changed["override"][1]["channel"] == "sms"
    assert {"attempt", "max_attempts", "order_number"} <= set(changed["placeholders"])

    status, only = await admin.call("GET", "/responses?overridden=true")
    assert status == 200 and [i["name"] for i in only["items"]] == ["utter_order_not_found"]
    # Another shop's change is not in this shop's list.
    _, theirs = await admin.call("GET", "/responses?overridden=true", shop=admin.other)
    assert theirs["total"] == 0

    # The NLG endpoint fills the arguments the action passes and picks the SMS variant on SMS.
    arguments = {"attempt": 2, "max_attempts": 3}
    assert (await say(admin, "utter_order_not_found", channel="sms", arguments=arguments)
            )[1]["text"] == "No match (2/3)"
    assert (await say(admin, "utter_order_not_found", channel="web", arguments=arguments)
            )[1]["text"] == "No match. Try 2 of 3."


async def test_a_broken_template_is_refused_with_a_clear_422(admin: Admin) -> None:
    status, body = await admin.call("PUT", "/responses/utter_ask_email", json={"variants": [
        {"text": "What email did you use for order {ordr_number}?", "channel": None}]})
    assert status == 422 and "{ordr_number}" in body["detail"]
    assert "{order_number}" in body["detail"]  # what it may use instead
    status, body = await admin.call("PUT", "/responses/utter_ask_email", json={"variants": []})
    assert status == 422 and "at least one variant" in body["detail"]
    status, _ = await admin.call("PUT", "/responses/utter_ask_email", json={"variants": [
        {"text": "x", "channel": "fax"}]})
    assert status == 422
    # Nothing was stored: the bot still says the default.
    assert (await say(admin, "utter_ask_email"))[1]["text"].startswith("Thanks! And what email")


async def test_unknown_response_names_are_not_found(admin: Admin) -> None:
    for method in ("GET", "PUT", "DELETE"):
        extra: dict[str, Any] = {"json": NEW} if method == "PUT" else {}
        status, body = await admin.call(method, "/responses/utter_nope", **extra)
        assert status == 404 and "utter_nope" in body["detail"]
    assert (await say(admin, "utter_nope"))[0] == 404


async def test_agents_may_not_read_or_change_texts(admin: Admin) -> None:
    for method, path in (("GET", "/responses"), ("PUT", "/responses/utter_greet"),
                         ("DELETE", "/responses/utter_greet")):
        extra: dict[str, Any] = {"json": NEW} if method == "PUT" else {}
        status, body = await admin.call(method, path, role="agent", **extra)
        assert status == 403 and body["detail"]
    status, _ = await admin.call("PUT", "/responses/utter_greet", role="owner", json=NEW)
    assert status == 200


async def test_changes_are_audited_with_before_and_after(admin: Admin) -> None:
    await admin.call("PUT", "/responses/utter_iamabot", role="designer", json=NEW)
    await admin.call("DELETE", "/responses/utter_iamabot", role="designer")
    async with admin.sessions() as session:
        rows = (await session.scalars(select(AuditRow).where(
            AuditRow.tenant_id == admin.demo.id, AuditRow.target == "utter_iamabot")
            .order_by(AuditRow.id))).all()
    assert [r.action for r in rows] == ["response.update", "response.reset"]
    assert rows[0].before == {"variants": None}
    assert rows[0].after["variants"][0]["text"] == NEW["variants"][0]["text"]
    assert rows[1].before["variants"][0]["text"] == NEW["variants"][0]["text"]
    assert all(r.actor.startswith("key:") for r in rows)


async def test_the_nlg_endpoint_answers_rasas_own_callback_body(admin: Admin) -> None:
    """Rasa's plain `callback` NLG posts the whole tracker; the shop and slots come from it."""
    await admin.call("PUT", "/responses/utter_ask_email", json={"variants": [
        {"text": "Which email goes with order {order_number}?", "channel": None}]})
    token = admin.settings.nlg_token.reveal()
    body = {"response": "utter_ask_email", "id": None, "arguments": {},
            "channel": {"name": "collector"},
            "tracker": {"sender_id": f"{admin.demo.id}:web:v", "slots": {"order_number": "1001"},
                        "events": [], "latest_message": {}, "paused": False}}
    _, reply = await admin.client.post("/nlg", json=body,
                                       headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200 and reply.json == {"text": "Which email goes with order 1001?"}


async def test_the_nlg_endpoint_refuses_a_wrong_token(admin: Admin) -> None:
    assert (await say(admin, "utter_cancelled", token="not-the-token"))[0] == 401
    assert (await say(admin, "utter_cancelled", token="valid"))[0] == 200


async def test_another_process_sees_a_change_once_its_cache_entry_is_a_second_old(
        admin: Admin) -> None:
    """An admin replica that did not make the change: its cached texts are re-read after 1 s."""
    now = [100.0]
    replica = OverrideCache(admin.sessions, ttl=1.0, clock=lambda: now[0])
    domain = domain_texts()
    assert (await replica.variants(admin.demo.id, "utter_cancelled", domain))[0]["text"] \
        .startswith(STOPPED)
    await admin.call("PUT", "/responses/utter_cancelled", json=NEW)
    now[0] += 0.5
    assert (await replica.variants(admin.demo.id, "utter_cancelled", domain))[0]["text"] \
        .startswith(STOPPED)  # still within its second
    now[0] += 0.6
    assert (await replica.variants(admin.demo.id, "utter_cancelled", domain))[0]["text"] \
        == NEW["variants"][0]["text"]
    await admin.call("DELETE", "/responses/utter_cancelled")
    replica.forget(admin.demo.id)  # a write in its own process: at once
    assert (await replica.variants(admin.demo.id, "utter_cancelled", domain))[0]["text"] \
        .startswith(STOPPED)


async def test_without_the_token_nobody_is_answered_not_even_from_loopback(
        admin: Admin) -> None:
    """Loopback callers once needed no token, so anything on the host (or the internet, behind
    a reverse proxy on the host) read any shop's texts by its id. Here the admin service's
    real server is asked from 127.0.0.1."""
    asked = {"response": "utter_greet", "sender_id": f"{admin.demo.id}:web:v", "slots": {}}
    async with serving(admin.app) as base, httpx.AsyncClient(base_url=base) as client:
        plain = await client.post("/nlg", json=asked)
        with_token = await client.post("/nlg", json=asked, headers={
            "Authorization": f"Bearer {admin.settings.nlg_token.reveal()}"})
    assert plain.status_code == 401 and "token" in plain.json()["detail"]
    assert with_token.status_code == 200 and with_token.json()["text"]


BIKES_DOMAIN = """version: "3.1"
intents:
  - ask_frame_size
slots:
  rider_height:
    type: text
    mappings:
      - type: from_text
responses:
  utter_frame_size:
    - text: "Our size guide: 170-180 cm rides a medium frame."
"""


async def test_a_shops_own_responses_are_listed_and_changed_like_the_base_ones(
        admin: Admin) -> None:
    """A response the shop's own domain adds (issue 15) is one of its texts: listed with its
    draft's text as the default, changed without retraining (its slots are placeholders),
    said by the NLG endpoint; its active model's domain text is the default once it has one.
    Another shop has no such response."""
    _, stored = await admin.client.put(
        "/api/v1/training/domain/bikes", content=BIKES_DOMAIN,
        headers={**admin.demo.auth("designer"), "Content-Type": "application/x-yaml"})
    assert stored.status in (200, 201), stored.body
    status, own = await admin.call("GET", "/responses/utter_frame_size", role="designer")
    assert status == 200 and own["override"] is None
    assert own["default"][0]["text"].startswith("Our size guide")
    assert "rider_height" in own["placeholders"]
    _, page = await admin.call("GET", "/responses?page_size=200", role="designer")
    assert "utter_frame_size" in [r["name"] for r in page["items"]]
    assert page["total"] == len(domain_texts().responses) + 1
    # Without an override the NLG endpoint has none: the shop's model says its domain's text.
    assert (await say(admin, "utter_frame_size"))[0] == 404

    changed = {"variants": [{"text": "At {rider_height} you ride a medium frame."}]}
    status, body = await admin.call("PUT", "/responses/utter_frame_size", role="designer",
                                    json=changed)
    assert status == 200 and body["effective"][0]["text"] == changed["variants"][0]["text"]
    status, message = await say(admin, "utter_frame_size", slots={"rider_height": "175 cm"})
    assert status == 200 and message == {"text": "At 175 cm you ride a medium frame."}
    status, body = await admin.call("PUT", "/responses/utter_frame_size", role="designer",
                                    json={"variants": [{"text": "At {rider_size} ..."}]})
    assert status == 422 and "rider_size" in body["detail"]

    # Trained and activated: the active model's domain text is the default.
    async with admin.sessions() as session:
        session.add(ModelVersionRow(
            id=uuid.uuid4().hex, tenant_id=admin.demo.id, state="ready",
            files={"domain/bikes.yml": BIKES_DOMAIN.replace("Our size guide", "The guide")},
            snapshot_sha256="0" * 64))
        await session.flush()
        version = (await session.scalars(select(ModelVersionRow.id).where(
            ModelVersionRow.tenant_id == admin.demo.id))).one()
        await set_active(session, admin.demo.id, version, "test")
        await session.commit()
    status, body = await admin.call("DELETE", "/responses/utter_frame_size", role="designer")
    assert status == 200 and body["default"][0]["text"].startswith("The guide"), body

    for method in ("GET", "DELETE"):
        status, body = await admin.call(method, "/responses/utter_frame_size",
                                        shop=admin.other)
        assert status == 404 and body["detail"]
    assert (await say(admin, "utter_frame_size", shop_id=admin.other.id))[0] == 404


async def test_an_override_outliving_its_response_is_shown_and_deleted(admin: Admin) -> None:
    """The shop's own response goes with its domain draft; the override stays (it speaks
    again when the response is back), listed and read with `defined` false, and DELETE
    removes it: the walkthrough's designer got 404 on both and the old text came back."""
    yaml = {**admin.demo.auth("designer"), "Content-Type": "application/x-yaml"}
    _, stored = await admin.client.put("/api/v1/training/domain/bikes", content=BIKES_DOMAIN,
                                       headers=yaml)
    assert stored.status in (200, 201), stored.body
    old = {"variants": [{"text": "EDITED: medium frames fit most riders."}]}
    status, _ = await admin.call("PUT", "/responses/utter_frame_size", role="designer", json=old)
    assert status == 200
    status, _ = await admin.call("DELETE", "/training/domain/bikes", role="designer")
    assert status == 204

    status, orphan = await admin.call("GET", "/responses/utter_frame_size", role="designer")
    assert status == 200, orphan
    assert orphan["defined"] is False and orphan["effective"] == []
    assert orphan["override"][0]["text"] == old["variants"][0]["text"]
    _, page = await admin.call("GET", "/responses", params={"overridden": "true"},
                               role="designer")
    assert [(r["name"], r["defined"]) for r in page["items"]] == [("utter_frame_size", False)]
    _, page = await admin.call("GET", "/responses", params={"page_size": 200}, role="designer")
    assert page["total"] == len(domain_texts().responses) + 1
    assert all(r["defined"] for r in page["items"][:-1])
    status, body = await admin.call("PUT", "/responses/utter_frame_size", role="designer",
                                    json=old)
    assert status == 404 and "DELETE" in body["detail"]
    status, body = await admin.call("GET", "/responses/utter_frame_size", shop=admin.other)
    assert status == 404  # another shop has neither the response nor the override

    status, deleted = await admin.call("DELETE", "/responses/utter_frame_size", role="designer")
    assert status == 200 and deleted["override"] is None and deleted["defined"] is False
    async with admin.sessions() as session:
        entry = (await session.execute(select(AuditRow).where(
            AuditRow.action == "response.reset", AuditRow.target == "utter_frame_size"))
        ).scalar_one()
    assert (entry.before or {})["variants"][0]["text"] == old["variants"][0]["text"]
    for method in ("GET", "DELETE"):
        status, body = await admin.call(method, "/responses/utter_frame_size", role="designer")
        assert status == 404 and "DELETE" not in body["detail"], body

    # Defined again: the draft's own text speaks, not the old override.
    _, stored = await admin.client.put("/api/v1/training/domain/bikes", content=BIKES_DOMAIN,
                                       headers=yaml)
    assert stored.status in (200, 201), stored.body
    status, back = await admin.call("GET", "/responses/utter_frame_size", role="designer")
    assert status == 200 and back["override"] is None and back["defined"] is True
    assert back["effective"][0]["text"].startswith("Our size guide")
    assert (await say(admin, "utter_frame_size"))[0] == 404  # NLG: no override to serve
