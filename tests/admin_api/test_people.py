"""A shop's people: invited by mail (a real SMTP server catches it) with a one-time link,
accepted with a password, listed, given another role or removed, never leaving a shop
without an owner; and the platform operator creating a shop for its first owner."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from admin_api import passwords, people
from admin_api.tables import AuditRow, InviteRow
from core.db import utcnow
from tests.admin_api.accounts import PASSWORD, Browser, person
from tests.admin_api.conftest import Admin
from tests.integration.mailbox import Mailbox
from tests.servers import free_port

pytestmark = pytest.mark.asyncio
LINK = re.compile(r"(https?://\S+/invite\?token=([\w-]+))")


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox(free_port()) as box:
        yield box


def with_smtp(admin: Admin, port: int, public_url: str | None = None) -> None:
    admin.app.ctx.settings = replace(admin.settings, smtp_url=f"smtp://127.0.0.1:{port}",
                                     admin_public_url=public_url)


async def test_an_invitation_mailed_accepted_and_used_once(admin: Admin,
                                                          mailbox: Mailbox) -> None:
    with_smtp(admin, mailbox.port, public_url="https://admin.example.com")
    status, invited = await admin.call("POST", "/users",
                                       json={"email": "Nina@Example.com ", "role": "designer"})
    assert status == 201, invited
    assert invited["emailed"] is True and invited["link"] is None
    assert invited["member"]["status"] == "invited" and invited["member"]["role"] == "designer"

    [mail] = mailbox.to("nina@example.com")
    assert "Demo" in mail["Subject"] and mail["From"]
    body = mail.get_content()
    link, token = LINK.search(body).groups()  # type: ignore[union-attr]  # asserted by use
    assert link.startswith("https://admin.example.com/invite?token=")
    assert "designer" in body and "7 days" in body
    async with admin.sessions() as session:  # only the token's hash is stored
        stored = (await session.execute(select(InviteRow.token_hash))).scalars().all()
    assert token not in " ".join(stored)

    status, page = await admin.call("GET", "/users")
    assert status == 200
    assert [(m["email"], m["status"]) for m in page["items"]] == [("nina@example.com",
                                                                   "invited")]

    browser = Browser(admin)
    status, offer, _ = await browser.call("POST", "/invitations/lookup", json={"token": token})
    assert status == 200, offer  # what the invitation page says before asking for a password
    assert (offer["shop"], offer["email"], offer["role"], offer["has_account"]) == (
        "Demo Outfitters", "nina@example.com", "designer", False)
    status, joined, response = await browser.call(
        "POST", "/invitations/accept",
        json={"token": token, "password": "nina's new password", "name": "Nina"})
    assert status == 200, joined
    assert joined["role"] == "designer" and joined["shop"]["slug"] == "demo"
    assert joined["user"]["name"] == "Nina" and joined["csrf_token"]
    assert "sb_session=" in response.headers["set-cookie"]  # logged in at once
    assert (await browser.call("GET", "/session"))[0] == 200

    status, again, _ = await Browser(admin).call(
        "POST", "/invitations/accept", json={"token": token, "password": "another password"})
    assert status == 410 and "used already" in again["detail"]
    status, again, _ = await Browser(admin).call("POST", "/invitations/lookup",
                                                 json={"token": token})
    assert status == 410 and "used already" in again["detail"]

    _, page = await admin.call("GET", "/users")
    [nina] = page["items"]
    assert nina["status"] == "active" and nina["name"] == "Nina" and nina["role"] == "designer"
    await Browser(admin).log_in("nina@example.com", "nina's new password")


async def test_without_smtp_the_owner_gets_the_link(admin: Admin) -> None:
    status, invited = await admin.call("POST", "/users",
                                       json={"email": "otto@example.com", "role": "agent"})
    assert status == 201 and invited["emailed"] is False
    assert LINK.fullmatch(invited["link"])
    token = LINK.fullmatch(invited["link"]).group(2)  # type: ignore[union-attr]  # matched above
    status, joined, _ = await Browser(admin).call(
        "POST", "/invitations/accept", json={"token": token, "password": "otto password 1"})
    assert status == 200 and joined["role"] == "agent"


async def test_a_broken_mail_server_leaves_no_invitation(admin: Admin) -> None:
    with_smtp(admin, free_port())  # nothing listens there
    status, body = await admin.call("POST", "/users",
                                    json={"email": "lost@example.com", "role": "agent"})
    assert status == 503 and "could not be mailed" in body["detail"]
    _, page = await admin.call("GET", "/users")
    assert page["total"] == 0


async def test_bad_expired_and_replaced_links(admin: Admin) -> None:
    browser = Browser(admin)
    status, body, _ = await browser.call(
        "POST", "/invitations/accept", json={"token": "made-up", "password": "long enough pw"})
    assert status == 404 and body["detail"]
    status, body, _ = await browser.call("POST", "/invitations/lookup",
                                         json={"token": "made-up"})
    assert status == 404 and body["detail"]

    _, first = await admin.call("POST", "/users", json={"email": "eve@example.com",
                                                        "role": "agent"})
    _, second = await admin.call("POST", "/users", json={"email": "eve@example.com",
                                                         "role": "designer"})
    old = first["link"].rpartition("=")[2]
    new = second["link"].rpartition("=")[2]
    status, _, _ = await browser.call("POST", "/invitations/accept",
                                      json={"token": old, "password": "long enough pw"})
    assert status == 404  # inviting again replaced the first link
    _, page = await admin.call("GET", "/users")
    assert [m["role"] for m in page["items"]] == ["designer"]

    status, body, _ = await browser.call("POST", "/invitations/accept",
                                         json={"token": new, "password": "short"})
    assert status == 422  # too short a password, and the link still works afterwards
    async with admin.sessions() as session:
        await session.execute(update(InviteRow).values(expires_at=utcnow() - timedelta(1)))
        await session.commit()
    status, body, _ = await browser.call("POST", "/invitations/accept",
                                         json={"token": new, "password": "long enough pw"})
    assert status == 410 and "expired" in body["detail"]


async def test_an_existing_account_joins_with_its_own_password(admin: Admin) -> None:
    await person(admin, "olga@demo.example", "owner")
    _, invited = await admin.call("POST", "/users", json={"email": "olga@demo.example",
                                                          "role": "agent"}, shop=admin.other)
    token = invited["link"].rpartition("=")[2]
    browser = Browser(admin)
    status, offer, _ = await browser.call("POST", "/invitations/lookup", json={"token": token})
    # The owner holds this link (no SMTP): whether the email has an account is not said.
    assert status == 200 and offer["has_account"] is None and offer["role"] == "agent"
    status, body, _ = await browser.call(
        "POST", "/invitations/accept", json={"token": token, "password": "a new password!"})
    assert status == 403 and "has an account" in body["detail"]
    status, joined, _ = await browser.call(
        "POST", "/invitations/accept", json={"token": token, "password": PASSWORD})
    assert status == 200 and joined["shop"]["id"] == admin.other.id
    assert {s["role"] for s in joined["shops"]} == {"owner", "agent"}
    await Browser(admin).log_in("olga@demo.example")  # the old password still works


async def test_guessing_an_accounts_password_through_an_invitation_is_limited(
        admin: Admin) -> None:
    """Security walk: an owner invites someone with an account (no SMTP: the owner holds the
    link) and guesses that account's password at the accept form, which no limit checked.
    Now it counts as failed logins do: after five, even the right password waits (429)."""
    await person(admin, "olga@demo.example", "owner")
    _, invited = await admin.call("POST", "/users", json={"email": "olga@demo.example",
                                                          "role": "agent"}, shop=admin.other)
    token = invited["link"].rpartition("=")[2]
    browser = Browser(admin)
    for n in range(people.FAILURES_PER_EMAIL):
        status, _, _ = await browser.call("POST", "/invitations/accept",
                                          json={"token": token, "password": f"guess {n:08d}"})
        assert status == 403
    status, body, response = await browser.call(
        "POST", "/invitations/accept", json={"token": token, "password": PASSWORD})
    assert status == 429 and int(response.headers["retry-after"]) >= 1, body
    status, _, _ = await browser.call("POST", "/session",
                                      json={"email": "olga@demo.example", "password": PASSWORD})
    assert status == 429  # the same count as logins: no second allowance through the form


async def test_only_owners_manage_people_and_members_cannot_be_invited_twice(
        admin: Admin) -> None:
    for role in ("designer", "agent"):
        assert (await admin.call("GET", "/users", role=role))[0] == 403
        assert (await admin.call("POST", "/users", role=role,
                                 json={"email": "x@example.com", "role": "owner"}))[0] == 403
    await person(admin, "olga@demo.example", "owner")
    status, body = await admin.call("POST", "/users", json={"email": "OLGA@demo.example",
                                                            "role": "agent"})
    assert status == 409 and "already" in body["detail"]
    status, _ = await admin.call("POST", "/users", json={"email": "not an email",
                                                         "role": "agent"})
    assert status == 422


async def test_roles_change_and_the_last_owner_stays(admin: Admin) -> None:
    olga = await person(admin, "olga@demo.example", "owner")
    dana = await person(admin, "dana@demo.example", "designer")
    browser = Browser(admin)
    await browser.log_in("dana@demo.example")

    status, body = await admin.call("PATCH", f"/users/{olga.id}", json={"role": "agent"})
    assert status == 409 and "owner" in body["detail"]
    assert (await admin.call("DELETE", f"/users/{olga.id}"))[0] == 409

    status, changed = await admin.call("PATCH", f"/users/{dana.id}", json={"role": "owner"})
    assert status == 200 and changed["role"] == "owner"
    assert (await browser.call("GET", "/keys"))[0] == 200  # the session's role follows at once
    status, _ = await admin.call("PATCH", f"/users/{olga.id}", json={"role": "agent"})
    assert status == 200  # another owner exists now

    assert (await admin.call("DELETE", f"/users/{dana.id}"))[0] == 409  # the last owner now
    assert (await admin.call("PATCH", f"/users/{olga.id}", json={"role": "owner"}))[0] == 200
    assert (await admin.call("DELETE", f"/users/{dana.id}"))[0] == 204
    status, _, _ = await browser.call("GET", "/session")
    assert status == 401  # removed: the session is over
    _, page = await admin.call("GET", "/users")
    assert [(m["email"], m["role"]) for m in page["items"]] == [("olga@demo.example", "owner")]

    async with admin.sessions() as session:
        actions = (await session.execute(select(AuditRow.action, AuditRow.before, AuditRow.after)
                                         .where(AuditRow.tenant_id == admin.demo.id)
                                         .order_by(AuditRow.id))).all()
    assert ("user.role", {"role": "designer"}, {"role": "owner"}) in actions
    assert ("user.remove", {"role": "owner"}, None) in actions


async def test_another_shops_people_are_not_found(admin: Admin) -> None:
    theirs = await person(admin, "them@example.com", "owner", shop=admin.other)
    _, invited = await admin.call("POST", "/users", json={"email": "new@example.com",
                                                          "role": "agent"}, shop=admin.other)
    for target in (theirs.id, invited["member"]["id"], "invite-x", "nobody"):
        assert (await admin.call("PATCH", f"/users/{target}", json={"role": "agent"}))[0] == 404
        assert (await admin.call("DELETE", f"/users/{target}"))[0] == 404
    _, page = await admin.call("GET", "/users")
    assert page["total"] == 0


async def test_an_invitation_can_be_withdrawn(admin: Admin) -> None:
    _, invited = await admin.call("POST", "/users", json={"email": "w@example.com",
                                                          "role": "agent"})
    invite_id = invited["member"]["id"]
    status, changed = await admin.call("PATCH", f"/users/{invite_id}", json={"role": "designer"})
    assert status == 200 and changed["role"] == "designer" and changed["status"] == "invited"
    assert (await admin.call("DELETE", f"/users/{invite_id}"))[0] == 204
    token = invited["link"].rpartition("=")[2]
    status, _, _ = await Browser(admin).call(
        "POST", "/invitations/accept", json={"token": token, "password": "long enough pw"})
    assert status == 404


async def test_an_operator_creates_a_shop_and_its_owner_joins(admin: Admin) -> None:
    await people.set_password(admin.sessions, "op@switchboard.example", PASSWORD, create=True)
    await people.make_operator(admin.sessions, "op@switchboard.example")
    operator = Browser(admin)
    body = await operator.log_in("op@switchboard.example")
    assert body["role"] == "operator" and body["shop"] is None

    shop = {"slug": "acme", "name": "Acme", "owner_email": "boss@acme.example"}
    status, created, _ = await operator.call("POST", "/operator/shops", json=shop, csrf=False)
    assert status == 403  # CSRF applies to operators too
    status, created, _ = await operator.call("POST", "/operator/shops", json=shop)
    assert status == 201, created
    assert created["slug"] == "acme" and created["invitation"]["member"]["role"] == "owner"
    assert (await operator.call("POST", "/operator/shops", json=shop))[0] == 409
    assert (await operator.call("GET", "/keys"))[0] == 403  # an operator has no shop

    boss = Browser(admin)
    token = created["invitation"]["link"].rpartition("=")[2]
    status, joined, _ = await boss.call("POST", "/invitations/accept",
                                        json={"token": token, "password": "boss password"})
    assert status == 200 and joined["shop"]["slug"] == "acme" and joined["role"] == "owner"
    status, page, _ = await boss.call("GET", "/users")
    assert [m["email"] for m in page["items"]] == ["boss@acme.example"]

    # Shop people and their keys never reach the operator's route.
    assert (await boss.call("POST", "/operator/shops", json={**shop, "slug": "b2"}))[0] == 403
    assert (await admin.call("POST", "/operator/shops", json={**shop, "slug": "b3"}))[0] == 403


async def test_an_account_made_through_a_passed_on_link_is_not_reused_by_another_shop(
        admin: Admin, mailbox: Mailbox) -> None:
    """Without SMTP the owner of the other shop holds the link for xena@example.com and makes
    her account with a password of their own. When the demo shop invites Xena, that account
    (its address never proven) joins nothing through a link passed on by hand, whoever
    knows its password; a mailed link or a reset mail to Xena proves the address."""
    _, invited = await admin.call("POST", "/users", json={"email": "xena@example.com",
                                                          "role": "agent"}, shop=admin.other)
    made = invited["link"].rpartition("=")[2]
    status, _, _ = await Browser(admin).call(
        "POST", "/invitations/accept", json={"token": made, "password": "the maker's pass"})
    assert status == 200  # it works in the shop that made it, as before

    _, invited = await admin.call("POST", "/users", json={"email": "xena@example.com",
                                                          "role": "designer"})
    token = invited["link"].rpartition("=")[2]
    for password in ("the maker's pass", "xena's own password"):
        status, body, _ = await Browser(admin).call(
            "POST", "/invitations/accept", json={"token": token, "password": password})
        assert status == 403 and "never confirmed" in body["detail"], body
    _, page = await admin.call("GET", "/users")
    assert [(m["email"], m["status"]) for m in page["items"]] == [
        ("xena@example.com", "invited")]  # nobody joined the demo shop

    # A mailed invitation reaches Xena only: with a password she chooses by a reset mail
    # (the maker's sessions end), she joins, and the address counts as hers from then on.
    with_smtp(admin, mailbox.port, public_url="https://admin.example.com")
    status, invited = await admin.call("POST", "/users", json={"email": "xena@example.com",
                                                               "role": "designer"})
    assert status == 201 and invited["emailed"] is True
    [mail] = mailbox.to("xena@example.com")
    mailed = LINK.search(mail.get_content()).group(2)  # type: ignore[union-attr]  # a link
    status, offer, _ = await Browser(admin).call("POST", "/invitations/lookup",
                                                 json={"token": mailed})
    assert status == 200 and offer["has_account"] is True  # told to the invitee herself
    status, body, _ = await Browser(admin).call(
        "POST", "/invitations/accept", json={"token": mailed, "password": "xena's own password"})
    assert status == 403 and "reset link" in body["detail"]
    await Browser(admin).call("POST", "/password/forgot", json={"email": "xena@example.com"})
    await passwords.Outbox.of(admin.app.ctx).settle()
    reset = re.search(r"reset\?token=([\w-]+)", mailbox.to("xena@example.com")[-1]
                      .get_content()).group(1)  # type: ignore[union-attr]  # mailed
    status, _, _ = await Browser(admin).call(
        "POST", "/password/reset", json={"token": reset, "password": "xena's own password"})
    assert status == 200
    status, joined, _ = await Browser(admin).call(
        "POST", "/invitations/accept", json={"token": mailed, "password": "xena's own password"})
    assert status == 200 and joined["shop"]["id"] == admin.demo.id


async def test_a_proven_account_joins_through_a_passed_on_link_with_its_password(
        admin: Admin, mailbox: Mailbox) -> None:
    """Proof by a mailed invitation: the account made with it joins the next shop through a
    link passed on by hand, with its password, as before."""
    with_smtp(admin, mailbox.port, public_url="https://admin.example.com")
    await admin.call("POST", "/users", json={"email": "yuri@example.com", "role": "agent"},
                     shop=admin.other)
    mail = mailbox.to("yuri@example.com")[0].get_content()
    token = LINK.search(mail).group(2)  # type: ignore[union-attr]  # mailed
    status, _, _ = await Browser(admin).call(
        "POST", "/invitations/accept", json={"token": token, "password": "yuri's password"})
    assert status == 200
    admin.app.ctx.settings = admin.settings  # no SMTP from here: the owner gets the link
    _, invited = await admin.call("POST", "/users", json={"email": "yuri@example.com",
                                                          "role": "designer"})
    token = invited["link"].rpartition("=")[2]
    status, offer, _ = await Browser(admin).call("POST", "/invitations/lookup",
                                                 json={"token": token})
    assert status == 200 and offer["has_account"] is None  # the owner holds this link
    status, joined, _ = await Browser(admin).call(
        "POST", "/invitations/accept", json={"token": token, "password": "yuri's password"})
    assert status == 200 and {s["role"] for s in joined["shops"]} == {"agent", "designer"}


async def test_a_passed_on_link_does_not_tell_whether_the_email_has_an_account(
        admin: Admin) -> None:
    """The owner holding a link (no SMTP) learned from the lookup whether the invited email
    had an account anywhere, before anyone used the link. The answer is the same now."""
    await person(admin, "has@example.com", "owner", shop=admin.other)
    offers = []
    for email in ("has@example.com", "hasnot@example.com"):
        _, invited = await admin.call("POST", "/users", json={"email": email, "role": "agent"})
        status, offer, _ = await Browser(admin).call(
            "POST", "/invitations/lookup",
            json={"token": invited["link"].rpartition("=")[2]})
        assert status == 200
        offers.append({k: v for k, v in offer.items() if k not in ("email", "expires_at")})
    assert offers[0] == offers[1] and offers[0]["has_account"] is None
