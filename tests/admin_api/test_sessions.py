"""Browser sessions: login sets a safe cookie, the CSRF token guards unsafe requests, logout and
expiry end the session, failed logins are limited and never tell which emails exist."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from admin_api import people
from admin_api.tables import AdminSessionRow, LoginFailureRow, UserRow
from core.db import utcnow
from tests.admin_api.accounts import PASSWORD, Browser, person, slug_of
from tests.admin_api.conftest import Admin, api_call
from tests.admin_api.test_pages_browser import admin_process

pytestmark = pytest.mark.asyncio


def cookie_attributes(response: Any) -> dict[str, str]:
    headers = response.headers.get_list("set-cookie")
    [cookie] = [h for h in headers if h.startswith("sb_session=")]
    parts = [p.strip() for p in cookie.split(";")]
    attributes = {}
    for part in parts[1:]:
        name, _, value = part.partition("=")
        attributes[name.lower()] = value
    attributes["value"] = parts[0].partition("=")[2]
    return attributes


async def test_login_sets_an_httponly_lax_cookie_and_answers_who_i_am(admin: Admin) -> None:
    await person(admin, "olga@demo.example", "owner")
    browser = Browser(admin)
    status, body, response = await browser.call(
        "POST", "/session", json={"email": "Olga@Demo.example ", "password": PASSWORD})
    assert status == 200, body
    assert body["user"]["email"] == "olga@demo.example" and body["role"] == "owner"
    assert body["shop"]["slug"] == "demo" and body["csrf_token"]
    cookie = cookie_attributes(response)
    assert "httponly" in cookie and cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/" and "secure" not in cookie  # COOKIE_SECURE=false in tests
    assert len(cookie["value"]) >= 40 and cookie["value"] not in str(body)

    status, me, _ = await browser.call("GET", "/session")
    assert status == 200 and me["user"]["email"] == "olga@demo.example"
    assert me["csrf_token"] == body["csrf_token"]
    assert [s["slug"] for s in me["shops"]] == ["demo"]
    status, page, _ = await browser.call("GET", "/keys")  # the owner's routes open
    assert status == 200 and page["total"] >= 3


async def test_the_cookie_is_secure_when_settings_say_so(admin: Admin) -> None:
    admin.app.ctx.settings = replace(admin.settings, cookie_secure=True)
    await person(admin, "sam@demo.example")
    _, _, response = await Browser(admin).call(
        "POST", "/session", json={"email": "sam@demo.example", "password": PASSWORD})
    assert "secure" in cookie_attributes(response)


async def test_unsafe_requests_need_the_csrf_token(admin: Admin) -> None:
    await person(admin, "olga@demo.example", "owner")
    browser = Browser(admin)
    await browser.log_in("olga@demo.example")
    key = {"name": "from the page", "role": "agent"}

    status, body, _ = await browser.call("POST", "/keys", json=key, csrf=False)
    assert status == 403 and "X-CSRF-Token" in body["detail"]
    status, _, _ = await browser.call("POST", "/keys", json=key, csrf=False,
                                      headers={"X-CSRF-Token": "forged" + "x" * 37})
    assert status == 403
    status, created, _ = await browser.call("POST", "/keys", json=key)
    assert status == 201 and created["secret"]

    # Another browser's token does not fit this session.
    await person(admin, "pia@demo.example", "owner")
    other = Browser(admin)
    await other.log_in("pia@demo.example")
    status, _, _ = await browser.call("POST", "/keys", json=key, csrf=False,
                                      headers={"X-CSRF-Token": other.csrf})
    assert status == 403
    # Reads need no token; API keys need none either.
    assert (await browser.call("GET", "/keys", csrf=False))[0] == 200
    assert (await admin.call("POST", "/keys", json=key))[0] == 201


async def test_the_role_comes_from_the_membership(admin: Admin) -> None:
    await person(admin, "dana@demo.example", "designer")
    browser = Browser(admin)
    body = await browser.log_in("dana@demo.example")
    assert body["role"] == "designer"
    status, refused, _ = await browser.call("GET", "/keys")
    assert status == 403 and refused["detail"]


async def test_logout_ends_the_session(admin: Admin) -> None:
    await person(admin, "olga@demo.example")
    browser = Browser(admin)
    await browser.log_in("olga@demo.example")
    stolen = browser.client.cookies.get("sb_session")
    status, _, response = await browser.call("DELETE", "/session")
    assert status == 204
    assert cookie_attributes(response)["value"] in ("", '""')
    status, body, _ = await browser.call("GET", "/session")
    assert status == 401 and body["detail"]
    replay = Browser(admin)
    status, _, _ = await replay.call("GET", "/session", headers={"Cookie": f"sb_session={stolen}"})
    assert status == 401


async def test_sessions_expire_when_idle_or_old(admin: Admin) -> None:
    await person(admin, "olga@demo.example")
    idle, old = Browser(admin), Browser(admin)
    await idle.log_in("olga@demo.example")
    await old.log_in("olga@demo.example")
    async with admin.sessions() as session:
        await session.execute(update(AdminSessionRow).where(
            AdminSessionRow.token_hash == people.token_hash(idle.client.cookies["sb_session"]))
            .values(last_seen_at=utcnow() - people.SESSION_IDLE - timedelta(minutes=1)))
        await session.execute(update(AdminSessionRow).where(
            AdminSessionRow.token_hash == people.token_hash(old.client.cookies["sb_session"]))
            .values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    for browser in (idle, old):
        status, body, _ = await browser.call("GET", "/session")
        assert status == 401 and "log in again" in body["detail"]


async def test_a_wrong_password_and_an_unknown_email_answer_alike(admin: Admin) -> None:
    await person(admin, "olga@demo.example")
    browser = Browser(admin)
    wrong = await browser.call("POST", "/session",
                               json={"email": "olga@demo.example", "password": "nope" * 3})
    unknown = await browser.call("POST", "/session",
                                 json={"email": "nobody@demo.example", "password": "nope" * 3})
    assert wrong[0] == unknown[0] == 401
    assert wrong[1] == unknown[1] == {"detail": "wrong email or password"}
    assert "set-cookie" not in wrong[2].headers


async def test_failed_logins_are_limited_per_email_from_one_address(admin: Admin) -> None:
    await person(admin, "olga@demo.example")
    browser = Browser(admin)
    attempt = {"email": "olga@demo.example", "password": "guess-guess-guess"}
    for _ in range(people.FAILURES_PER_EMAIL - 1):
        assert (await browser.call("POST", "/session", json=attempt))[0] == 401
    await browser.log_in("olga@demo.example")  # a success clears the email's failures
    for _ in range(people.FAILURES_PER_EMAIL):
        assert (await browser.call("POST", "/session", json=attempt))[0] == 401
    status, body, response = await browser.call(
        "POST", "/session", json={"email": "olga@demo.example", "password": PASSWORD})
    assert status == 429 and "try again" in body["detail"]  # even the right password waits
    assert 1 <= int(response.headers["retry-after"]) <= 15 * 60
    # An unknown email is limited the same way (nothing tells which emails exist).
    ghost = {"email": "ghost@demo.example", "password": "guess-guess-guess"}
    answers = [(await browser.call("POST", "/session", json=ghost))[0]
               for _ in range(people.FAILURES_PER_EMAIL + 1)]
    assert answers == [401] * people.FAILURES_PER_EMAIL + [429]


async def test_failures_from_elsewhere_never_lock_the_owner_out(admin: Admin) -> None:
    """The security walk's lockout: five wrong passwords for an owner's email, from any
    address, refused the owner's right password for 15 minutes. Now the guesser's address is
    throttled for that email, and the owner logs in from their own (the addresses a trusted
    proxy names: connectors/proxies.py, tests/connectors/test_proxies.py)."""
    await person(admin, "olga@demo.example")
    attacker, owner = "203.0.113.9", "198.51.100.7"
    for _ in range(people.FAILURES_PER_EMAIL):
        with pytest.raises(people.LoginRefused):
            await people.login(admin.sessions, "olga@demo.example", "guess-guess-guess",
                               attacker)
    with pytest.raises(people.LoginThrottled):
        await people.login(admin.sessions, "olga@demo.example", PASSWORD, attacker)
    issued = await people.login(admin.sessions, "olga@demo.example", PASSWORD, owner)
    assert issued.session.user.email == "olga@demo.example"
    # The owner's login cleared only the owner's own failures: the guesser still waits.
    assert await people.failures(admin.sessions, "olga@demo.example", attacker) == 5
    with pytest.raises(people.LoginThrottled):
        await people.login(admin.sessions, "olga@demo.example", "guess-guess-guess", attacker)


async def test_failed_logins_are_limited_per_address(admin: Admin) -> None:
    await person(admin, "olga@demo.example")
    browser = Browser(admin)
    for n in range(people.FAILURES_PER_ADDRESS):
        status, _, _ = await browser.call(
            "POST", "/session", json={"email": f"spray{n}@demo.example", "password": "x" * 12})
        assert status == 401
    status, _, response = await browser.call(
        "POST", "/session", json={"email": "olga@demo.example", "password": PASSWORD})
    assert status == 429 and int(response.headers["retry-after"]) >= 1


async def test_a_login_checked_before_a_password_reset_gets_no_session(admin: Admin) -> None:
    """Security walk: a login whose password was checked just before a reset still saved
    its session after the reset had ended every session. A session is made only while the
    hash the password was checked against is the account's."""
    user = await person(admin, "olga@demo.example")
    async with admin.sessions() as session:
        checked = (await session.execute(select(UserRow.password_hash).where(
            UserRow.id == user.id))).scalar_one()
    await people.set_password(admin.sessions, "olga@demo.example", "a brand new password!")
    with pytest.raises(people.LoginRefused):
        await people.start_session(admin.sessions, user, checked_against=checked)
    async with admin.sessions() as session:
        left = (await session.execute(select(AdminSessionRow).where(
            AdminSessionRow.user_id == user.id))).scalars().all()
    assert left == []
    await Browser(admin).log_in("olga@demo.example", "a brand new password!")


async def spray(client: Any, forwarded_for: str) -> None:
    """As many failed logins as one address may make, each for another email."""
    for n in range(people.FAILURES_PER_ADDRESS):
        status, _, _ = await api_call(
            client, "POST", "/session", {"X-Forwarded-For": forwarded_for},
            json={"email": f"spray{n}@demo.example", "password": "x" * 12})
        assert status == 401


async def test_forwarded_addresses_count_only_from_trusted_proxies(admin: Admin,
                                                                   tmp_path: Path) -> None:
    """Behind TLS termination every login comes from the proxy: without TRUSTED_PROXIES one
    client's failures locked every login. With the proxy's address named, each client is the
    address it appended (last in X-Forwarded-For: an entry the client wrote itself changes
    nothing); from any other peer X-Forwarded-For is ignored: a client reaching the service
    directly cannot name itself anew per request (the second security walk's bypass of a
    count-based trust)."""
    await person(admin, "olga@demo.example")
    login = {"email": "olga@demo.example", "password": PASSWORD}
    await spray(admin.client, "203.0.113.9")
    status, _, _ = await api_call(admin.client, "POST", "/session",
                                  {"X-Forwarded-For": "198.51.100.7"}, json=login)
    assert status == 429  # not trusted: the same peer as the spray
    # A real server (the test client has no peer address): its peer is 127.0.0.1.
    async with admin.sessions() as session:  # the first part's failures forgotten
        await session.execute(delete(LoginFailureRow))
        await session.commit()
    with admin_process(tmp_path, admin.database_url, TRUSTED_PROXIES="127.0.0.1") as base:
        async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=30) as client:
            async def log_in(forwarded_for: str, password: str,
                             email: str = "olga@demo.example") -> int:
                answer = await client.post("/session", json={
                    "email": email, "password": password}, headers={
                    "X-Forwarded-For": forwarded_for, "Content-Type": "application/json"})
                return answer.status_code

            for n in range(people.FAILURES_PER_ADDRESS):  # the client's entry, the proxy's
                assert await log_in("198.51.100.1, 203.0.113.50", "x" * 12,
                                    f"spray{n}@demo.example") == 401
            assert await log_in("198.51.100.7", PASSWORD) == 200
            # The proxy's entry names the sprayer: a forged first one is no use.
            assert await log_in("198.51.100.7, 203.0.113.50", PASSWORD) == 429


async def test_a_person_in_two_shops_chooses_and_switches(admin: Admin) -> None:
    await person(admin, "max@demo.example", "owner")
    await person(admin, "max@demo.example", "agent", shop=admin.other)
    browser = Browser(admin)
    body = await browser.log_in("max@demo.example", shop=await slug_of(admin, admin.other))
    assert body["shop"]["id"] == admin.other.id and body["role"] == "agent"
    assert {s["role"] for s in body["shops"]} == {"owner", "agent"}
    assert (await browser.call("GET", "/keys"))[0] == 403  # an agent in that shop

    status, moved, _ = await browser.call("POST", "/session/shop", json={"shop": "demo"})
    assert status == 200 and moved["role"] == "owner" and moved["shop"]["slug"] == "demo"
    status, page, _ = await browser.call("GET", "/keys")
    assert status == 200 and all(k["id"] for k in page["items"])

    status, body, _ = await Browser(admin).call(
        "POST", "/session", json={"email": "max@demo.example", "password": PASSWORD,
                                  "shop": "nowhere"})
    assert status == 403 and "nowhere" in body["detail"]


async def test_an_api_key_is_not_a_session(admin: Admin) -> None:
    status, me = await admin.call("GET", "/session", role="designer")
    assert status == 200 and me["user"] is None and me["csrf_token"] is None
    assert me["role"] == "designer" and me["shop"]["slug"] == "demo"
    status, _ = await admin.call("POST", "/session/shop", json={"shop": "demo"})
    assert status == 403


async def test_undecodable_text_is_refused_not_a_server_error(admin: Admin) -> None:
    """JSON may escape lone surrogates ("\\ud800"), which no database or hash can store."""
    browser = Browser(admin)
    json_header = {"Content-Type": "application/json"}
    status, _, _ = await browser.call(
        "POST", "/session", headers=json_header,
        content=b'{"email": "a\\ud800@example.com", "password": "x\\udfff", "shop": "\\ud800"}')
    assert status == 422
    status, _, _ = await browser.call(
        "POST", "/invitations/accept", headers=json_header,
        content=b'{"token": "\\ud800", "password": "long enough \\ud800", "name": "\\ud800"}')
    assert status == 422
    status, _ = await admin.call("POST", "/users", headers=json_header,
                                 content=b'{"email": "x\\ud800@example.com", "role": "agent"}')
    assert status == 422
    assert people.clean("a\ud800") == "a?"  # the CLI's arguments may hold them too


@pytest.mark.real_password_hashes
async def test_an_unknown_email_costs_a_password_check_too(admin: Admin) -> None:
    """Timing must not tell which emails have accounts: an unknown email is verified against
    a dummy argon2 hash (tens of milliseconds), not answered in a few."""
    await person(admin, "olga@demo.example")

    async def fastest_of_three(email: str) -> float:
        times = []
        for n in range(3):
            started = time.perf_counter()
            with pytest.raises(people.LoginRefused):
                await people.login(admin.sessions, email, "wrong password!", f"10.1.0.{n}")
            times.append(time.perf_counter() - started)
        return min(times)

    known = await fastest_of_three("olga@demo.example")
    unknown = await fastest_of_three("nobody@demo.example")
    assert unknown > 0.3 * known, (unknown, known)
