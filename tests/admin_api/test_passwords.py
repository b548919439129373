"""Forgotten passwords: a reset link asked for by email (a real SMTP server catches it), the
same answer for an email without an account, the link resetting once within its hour, every
old session ended, failed logins forgotten, and requests limited per client (for one email
and in all) and mails per inbox, so that a stranger can neither flood an inbox nor lock its
owner out."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from admin_api import passwords
from admin_api.routes import passwords as passwords_route
from admin_api.tables import AuditRow, PasswordResetRow
from core.db import utcnow
from tests.admin_api import test_people
from tests.admin_api.accounts import PASSWORD, Browser, person
from tests.admin_api.conftest import Admin
from tests.admin_api.test_people import with_smtp
from tests.integration.mailbox import Mailbox

pytestmark = pytest.mark.asyncio
LINK = re.compile(r"(https?://\S+/reset\?token=([\w-]+))")
NEW_PASSWORD = "a brand new passphrase"
mailbox = test_people.mailbox  # the real SMTP server (aiosmtpd) the invitation tests use


async def forgot(admin: Admin, email: str,
                 client: str | None = None) -> tuple[int, dict[str, str]]:
    """Ask for a link (from the address `client` when given) and wait until its mail (if
    any) has gone: it leaves after the answer."""
    browser = Browser(admin)
    if client is not None:  # the connection's peer, as a browser's own address would be
        browser.client._transport = httpx.ASGITransport(app=admin.app, client=(client, 4321))
    status, body, response = await browser.call("POST", "/password/forgot",
                                                json={"email": email})
    await passwords.Outbox.of(admin.app.ctx).settle()
    return status, {"detail": body["detail"], "retry-after":
                    response.headers.get("retry-after", "")}


def token_in(mailbox: Mailbox, email: str) -> str:
    *_, mail = mailbox.to(email)
    link, token = LINK.search(mail.get_content()).groups()  # type: ignore[union-attr]  # used
    assert link.startswith("https://admin.example.com/reset?token=")
    return token


async def test_the_mailed_link_resets_once_and_ends_every_old_session(
        admin: Admin, mailbox: Mailbox) -> None:
    with_smtp(admin, mailbox.port, public_url="https://admin.example.com")
    user = await person(admin, "olga@example.com")
    await person(admin, "olga@example.com", role="agent", shop=admin.other)
    stolen = Browser(admin)
    await stolen.log_in("olga@example.com")
    for _ in range(5):  # someone else guessing: the email is locked out of logins
        await Browser(admin).call("POST", "/session", json={"email": "olga@example.com",
                                                            "password": "a wrong guess"})
    status, body, _ = await Browser(admin).call("POST", "/session", json={
        "email": "olga@example.com", "password": PASSWORD})
    assert status == 429, body

    known = await forgot(admin, "Olga@Example.com ")
    unknown = await forgot(admin, "nobody@example.com")
    assert known[0] == unknown[0] == 202
    assert known == unknown  # no account enumeration
    assert known[1]["detail"].startswith("If an account exists for that address, we sent a link")
    assert mailbox.to("nobody@example.com") == []
    [mail] = mailbox.to("olga@example.com")
    assert "password" in mail["Subject"].lower() and "1 hour" in mail.get_content()
    token = token_in(mailbox, "olga@example.com")
    async with admin.sessions() as session:  # only the token's hash is stored
        stored = (await session.execute(select(PasswordResetRow.token_hash))).scalars().all()
    assert stored and token not in " ".join(stored)

    browser = Browser(admin)
    status, link, _ = await browser.call("POST", "/password/reset/lookup", json={"token": token})
    assert status == 200 and link["email"] == "olga@example.com"
    status, body, _ = await browser.call("POST", "/password/reset",
                                         json={"token": token, "password": "short"})
    assert status == 422 and body["detail"][0]["loc"][-1] == "password"
    status, session, response = await browser.call(
        "POST", "/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert status == 200, session
    assert session["user"]["email"] == "olga@example.com" and session["csrf_token"]
    assert "sb_session=" in response.headers["set-cookie"]  # logged in at once
    browser.csrf = session["csrf_token"]
    assert (await browser.call("GET", "/session"))[0] == 200
    assert (await stolen.call("GET", "/session"))[0] == 401  # the old session ended

    for path, body in (("/password/reset", {"password": "yet another password"}),
                       ("/password/reset/lookup", {})):
        status, body, _ = await Browser(admin).call("POST", path, json={"token": token, **body})
        assert status == 410 and "used already" in body["detail"], (path, body)
    status, _, _ = await Browser(admin).call("POST", "/session", json={
        "email": "olga@example.com", "password": PASSWORD})
    assert status == 401  # the old password is gone; the lockout was cleared with the reset
    await Browser(admin).log_in("olga@example.com", NEW_PASSWORD)

    async with admin.sessions() as db:
        audited = (await db.execute(select(AuditRow.tenant_id, AuditRow.actor).where(
            AuditRow.action == "user.password_reset"))).all()
    assert sorted(audited) == sorted([(admin.demo.id, "user:olga@example.com"),
                                      (admin.other.id, "user:olga@example.com")])
    _, page = await admin.call("GET", "/audit", params={"action": "user.password_reset"})
    assert any(e["action"] == "user.password_reset" and e["target"] == user.id
               for e in page["items"]), page


async def test_unknown_expired_and_replaced_links(admin: Admin, mailbox: Mailbox) -> None:
    with_smtp(admin, mailbox.port, public_url="https://admin.example.com")
    await person(admin, "pia@example.com")
    status, body, _ = await Browser(admin).call(
        "POST", "/password/reset", json={"token": "made-up", "password": NEW_PASSWORD})
    assert status == 404 and body["detail"]

    await forgot(admin, "pia@example.com")
    first = token_in(mailbox, "pia@example.com")
    await forgot(admin, "pia@example.com")
    second = token_in(mailbox, "pia@example.com")
    status, _, _ = await Browser(admin).call(
        "POST", "/password/reset", json={"token": first, "password": NEW_PASSWORD})
    assert status == 404  # the new request replaced the first link

    async with admin.sessions() as session:  # an hour later
        await session.execute(update(PasswordResetRow).values(
            expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    status, body, _ = await Browser(admin).call(
        "POST", "/password/reset", json={"token": second, "password": NEW_PASSWORD})
    assert status == 410 and "expired" in body["detail"]
    await Browser(admin).log_in("pia@example.com")  # the password did not change


async def test_a_stranger_cannot_use_up_the_persons_requests(admin: Admin,
                                                             mailbox: Mailbox) -> None:
    """Once 3 requests an hour per email from anyone: a stranger who knew the address asked 3
    times and its owner could not reset their password for an hour."""
    with_smtp(admin, mailbox.port, public_url="https://admin.example.com")
    await person(admin, "quinn@example.com")
    for _ in range(3):
        assert (await forgot(admin, "quinn@example.com", "203.0.113.7"))[0] == 202
    status, body = await forgot(admin, "quinn@example.com", "203.0.113.7")
    assert status == 429 and 3000 < int(body["retry-after"]) <= 3601  # the stranger's limit

    assert (await forgot(admin, "quinn@example.com", "198.51.100.2"))[0] == 202  # the person
    assert len(mailbox.to("quinn@example.com")) == 4
    token = token_in(mailbox, "quinn@example.com")
    status, _, _ = await Browser(admin).call(
        "POST", "/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert status == 200


async def test_an_inbox_gets_a_bounded_number_of_mails_and_the_answer_never_tells(
        admin: Admin, mailbox: Mailbox) -> None:
    """Strangers on many addresses still cannot flood an inbox: past MAILS_PER_EMAIL in the
    hour no more mails go out, and the answer is the same 202 as before (a 429 would tell that
    others asked for this email). The newest mail's link still works: its owner is not
    locked out."""
    with_smtp(admin, mailbox.port, public_url="https://admin.example.com")
    await person(admin, "quinn@example.com")
    answers = [await forgot(admin, email, f"203.0.113.{n}")
               for n in range(passwords.MAILS_PER_EMAIL + 3)
               for email in ("quinn@example.com", "nobody@example.com")]
    assert {(status, body["detail"], body["retry-after"]) for status, body in answers} == {
        (202, passwords_route.ASKED, "")}
    assert len(mailbox.to("quinn@example.com")) == passwords.MAILS_PER_EMAIL
    token = token_in(mailbox, "quinn@example.com")
    status, _, _ = await Browser(admin).call(
        "POST", "/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert status == 200


async def test_one_client_is_limited_across_emails(admin: Admin, mailbox: Mailbox) -> None:
    with_smtp(admin, mailbox.port, public_url="https://admin.example.com")
    for n in range(passwords.REQUESTS_PER_ADDRESS):
        assert (await forgot(admin, f"someone-{n}@example.com", "2001:db8::1"))[0] == 202
    # the same /64 is the same client
    status, body = await forgot(admin, "someone-else@example.com", "2001:db8::2")
    assert status == 429 and "too many" in body["detail"] and int(body["retry-after"]) > 3000
    assert (await forgot(admin, "someone-else@example.com", "2001:db8:1::1"))[0] == 202


async def test_without_smtp_the_answer_is_the_same_and_nothing_is_made(admin: Admin) -> None:
    await person(admin, "rosa@example.com")
    known = await forgot(admin, "rosa@example.com")
    unknown = await forgot(admin, "nobody@example.com")
    assert known == unknown and known[0] == 202
    async with admin.sessions() as session:  # no link anybody could be shown
        assert (await session.execute(select(PasswordResetRow))).first() is None


async def test_the_answer_never_waits_for_the_mail_server(admin: Admin) -> None:
    """A mail server that accepts and says nothing until the test hangs up (or SMTP's timeout
    of 10 s): the answer comes while the mail is still on its way, as it does for an email
    without an account; the link nobody got is withdrawn."""
    silent: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda _, writer: silent.append(writer), "127.0.0.1", 0)
    with_smtp(admin, server.sockets[0].getsockname()[1], public_url="https://admin.example.com")
    await person(admin, "sven@example.com")
    status, _, _ = await Browser(admin).call("POST", "/password/forgot",
                                             json={"email": "sven@example.com"})
    # Answered, and the mail not done: nothing ends it before the server hangs up below.
    assert status == 202 and passwords.Outbox.of(admin.app.ctx).pending == 1
    while not silent:  # the mail is on its way, after the answer
        await asyncio.sleep(0.01)
    for writer in silent:
        writer.close()  # the server hangs up: the mail fails
    server.close()
    await passwords.Outbox.of(admin.app.ctx).settle()
    async with admin.sessions() as session:
        assert (await session.execute(select(PasswordResetRow))).first() is None


async def test_mails_the_server_refused_do_not_use_up_the_inbox(admin: Admin,
                                                                 mailbox: Mailbox) -> None:
    """A mail server that is down for a while: the requests meanwhile sent nothing, and the
    person's request once it is back gets its mail (they counted toward the inbox's
    MAILS_PER_EMAIL, which then silently sent nothing for the rest of the hour)."""
    await person(admin, "tara@example.com")
    down = await asyncio.start_server(lambda _, writer: writer.close(), "127.0.0.1", 0)
    with_smtp(admin, down.sockets[0].getsockname()[1], public_url="https://admin.example.com")
    for n in range(passwords.MAILS_PER_EMAIL):
        assert (await forgot(admin, "tara@example.com", f"203.0.113.{n}"))[0] == 202
    down.close()
    async with admin.sessions() as session:  # no link anybody got
        assert (await session.execute(select(PasswordResetRow))).first() is None
    with_smtp(admin, mailbox.port, public_url="https://admin.example.com")
    assert (await forgot(admin, "tara@example.com", "198.51.100.7"))[0] == 202
    token = token_in(mailbox, "tara@example.com")
    status, _, _ = await Browser(admin).call(
        "POST", "/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert status == 200
