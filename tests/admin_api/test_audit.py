"""The audit log over the admin API: an owner reads who changed what and when, newest first,
filtered by action, actor and day; another shop's entries never show; other roles may not
read it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert

from admin_api.tables import AuditRow
from core.db import utcnow
from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio


async def changes(admin: Admin) -> None:
    """A settings change, channel credentials and a key: three entries in the demo shop."""
    assert (await admin.call("PATCH", "/settings", json={"return_window_days": 21}))[0] == 200
    assert (await admin.call("PUT", "/channels/twilio", json={"credentials": {
        "account_sid": "AC42", "auth_token": "tw-secret-42", "sms_numbers": ["+15550002222"]}}
    ))[0] == 200
    assert (await admin.call("POST", "/keys", json={"name": "ci", "role": "agent"}))[0] == 201


async def test_an_owner_reads_who_changed_what_newest_first(admin: Admin) -> None:
    await changes(admin)
    await admin.call("PATCH", "/settings", shop=admin.other, json={"greeting": "theirs"})
    status, page = await admin.call("GET", "/audit")
    assert status == 200
    assert [e["action"] for e in page["items"]] == ["key.create", "channel.credentials",
                                                    "settings.update"]
    assert page["total"] == 3 and page["page"] == 1
    settings = page["items"][2]
    assert settings["before"] == {"return_window_days": 30}
    assert settings["after"] == {"return_window_days": 21}
    assert settings["actor"].startswith("key:") and settings["created_at"]
    channel = page["items"][1]
    assert channel["target"] == "twilio"
    assert channel["after"] == {"fields": ["account_sid", "auth_token", "sms_numbers"]}
    assert "tw-secret-42" not in str(page)
    assert "theirs" not in str(page)  # the other shop's entry is theirs alone


async def test_filters_and_pages(admin: Admin) -> None:
    await changes(admin)
    async with admin.sessions() as session:  # an entry from last month, by a person
        await session.execute(insert(AuditRow).values(
            tenant_id=admin.demo.id, actor="user:owner@demo.example", action="settings.update",
            target="settings", before={"greeting": None}, after={"greeting": "Hi"},
            created_at=utcnow() - timedelta(days=31)))
        await session.commit()

    _, page = await admin.call("GET", "/audit", params={"action": "settings.update"})
    assert page["total"] == 2
    _, page = await admin.call("GET", "/audit", params={"action": "channel."})
    assert [e["action"] for e in page["items"]] == ["channel.credentials"]
    _, page = await admin.call("GET", "/audit", params={"actor": "user:owner@demo.example"})
    assert [e["after"] for e in page["items"]] == [{"greeting": "Hi"}]
    today = utcnow().date()
    _, page = await admin.call("GET", "/audit", params={"from": today.isoformat(),
                                                        "to": today.isoformat()})
    assert page["total"] == 3
    last_month = (today - timedelta(days=31)).isoformat()
    _, page = await admin.call("GET", "/audit", params={"to": last_month})
    assert page["total"] == 1
    _, first = await admin.call("GET", "/audit", params={"page_size": 2})
    _, second = await admin.call("GET", "/audit", params={"page_size": 2, "page": 2})
    assert first["total"] == second["total"] == 4
    assert len(first["items"]) == 2 and len(second["items"]) == 2
    assert second["items"][-1]["actor"] == "user:owner@demo.example"  # the oldest, last


async def test_who_is_found_by_any_part_of_it_whatever_its_case(admin: Admin) -> None:
    """Owners type "anna", not "user:anna@shop.test"; % and _ are letters there, not LIKE's
    wildcards."""
    actors = ["user:anna@shop.test", "user:Hanna_B@shop.test", "user:bob@shop.test",
              "key:sk_50%off", "system:retention"]
    async with admin.sessions() as session:
        for actor in actors:
            await session.execute(insert(AuditRow).values(
                tenant_id=admin.demo.id, actor=actor, action="settings.update",
                target="settings", before=None, after={"by": actor}, created_at=utcnow()))
        await session.execute(insert(AuditRow).values(
            tenant_id=admin.other.id, actor="user:anna@other.test", action="settings.update",
            target="settings", before=None, after=None, created_at=utcnow()))
        await session.commit()

    async def who(typed: str) -> list[str]:
        status, page = await admin.call("GET", "/audit", params={"actor": typed})
        assert status == 200, page
        return sorted(entry["actor"] for entry in page["items"])

    assert await who("anna") == ["user:Hanna_B@shop.test", "user:anna@shop.test"]
    assert await who("ANNA@") == ["user:anna@shop.test"]
    assert await who("user:anna@shop.test") == ["user:anna@shop.test"]
    assert await who("a_b") == ["user:Hanna_B@shop.test"]
    assert await who("n_a") == []  # "_" is no wildcard ("nna" would match it)
    assert await who("50%") == ["key:sk_50%off"]
    assert await who("%") == ["key:sk_50%off"]  # "%" is no wildcard either
    assert await who("\\") == []
    assert await who("nobody") == []


async def test_bad_filters_are_refused(admin: Admin) -> None:
    for params in ({"from": "2026-02-30"}, {"page_size": "1000"}, {"actor": "key:\x00"}):
        status, answer = await admin.call("GET", "/audit", params=params)
        assert status == 422 and answer["detail"], params
    await changes(admin)
    status, page = await admin.call("GET", "/audit", params={"from": "2026-03-02",
                                                             "to": "2026-03-01"})
    assert status == 200 and page["total"] == 0  # an empty range holds nothing


async def test_only_owners_read_the_log(admin: Admin) -> None:
    for role in ("designer", "agent"):
        status, answer = await admin.call("GET", "/audit", role=role)
        assert status == 403 and answer["detail"]


async def test_ids_are_shown_as_the_people_and_conversations_they_stand_for(
        admin: Admin) -> None:
    from admin_api.routes.conversations import conversation_id
    from admin_api.tables import UserRow

    ann, ben = str(uuid.uuid4()), str(uuid.uuid4())
    status, key = await admin.call("POST", "/keys", json={"name": "night shift",
                                                          "role": "agent"})
    assert status == 201, key
    _, page = await admin.call("GET", "/audit", params={"action": "key.create"})
    night_shift = f"key:{page['items'][0]['target']}"
    conversation = conversation_id(admin.settings.conversation_id_key, admin.demo.id,
                                   f"{admin.demo.id}:sms:+4915112345678")
    foreign = conversation_id(admin.settings.conversation_id_key, admin.other.id,
                              f"{admin.other.id}:web:x")
    async with admin.sessions() as session:
        session.add_all([UserRow(id=ann, email="ann@demo.example", name="Ann Agent"),
                         UserRow(id=ben, email="ben@demo.example")])
        entries = [("user.join", ann, None, {"role": "agent"}),
                   ("conversation.transfer", conversation, {"assignee": ann},
                    {"assignee": ben}),
                   ("conversation.claim", conversation, None,
                    {"handoff_id": 4, "assignee": night_shift}),
                   ("privacy.erase", f"{admin.demo.id}:web:v-0123456789abcdef", None,
                    {"deleted": {"messages": 3}}),
                   ("conversation.note", foreign, None, {"note_id": 1})]
        for n, (action, target, before, after) in enumerate(entries):
            await session.execute(insert(AuditRow).values(
                tenant_id=admin.demo.id, actor=night_shift if n == 2 else f"user:{n}@x.test",
                action=action, target=target, before=before, after=after,
                created_at=utcnow() - timedelta(minutes=10 - n)))
        await session.commit()

    status, page = await admin.call("GET", "/audit", params={"action": "conversation."})
    assert status == 200
    note, claim, transfer = page["items"]
    assert transfer["what"] == "sms conversation with …5678"
    assert transfer["names"] == {ann: "Ann Agent <ann@demo.example>", ben: "ben@demo.example"}
    assert (transfer["before"], transfer["after"]) == ({"assignee": ann}, {"assignee": ben})
    assert claim["names"] == {night_shift: "API key 'night shift'"}  # the assignee and actor
    assert note["what"] is None and note["names"] == {}  # not an id of this shop: as recorded
    _, page = await admin.call("GET", "/audit", params={"action": "user.join"})
    assert page["items"][0]["what"] == "Ann Agent <ann@demo.example>"
    _, page = await admin.call("GET", "/audit", params={"action": "privacy."})
    assert page["items"][0]["what"] == "web visitor v-0123456789abcdef"
    # Settings and the like keep their target as it is.
    _, page = await admin.call("GET", "/audit", params={"action": "key.create"})
    assert page["items"][0]["what"] is None
