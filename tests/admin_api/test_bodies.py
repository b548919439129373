"""What the admin service takes as a request body, on its public routes as on the others: JSON
up to 1 MB, refused from Content-Length before a byte is read (uploads keep theirs, YAML drafts
their own 512 KB); JSON only as application/json (a cross-site page cannot send that type
without a preflight); JSON nested past the parser is a 400, never a 500 with a traceback.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from admin_api.api import BODY_LIMIT
from tests.admin_api.accounts import Browser, person
from tests.admin_api.conftest import Admin
from tests.admin_api.test_unstorable import _json_routes
from tests.servers import free_port, serving

pytestmark = pytest.mark.asyncio

MB = 1024 * 1024
LOGIN = {"email": "olga@demo.example", "password": "correct horse battery staple"}


async def first_answer(admin: Admin, path: str, length: int) -> bytes:
    """The admin service's real HTTP server: announce a JSON body of `length` bytes, send none
    of it, and return what the server answers before it closes the connection."""
    port = free_port()
    async with serving(admin.app, port=port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)  # read() ends when the server closes
        writer.close()
        return answer


async def test_a_20_mb_login_is_refused_before_its_body_is_read(admin: Admin) -> None:
    """The security walk's stall: 20 MB of `[{},{},...]` to the public login held the loop
    1.4 s and added 500 MB. Now nothing of it is read: 413 at once, the connection closed."""
    answer = await first_answer(admin, "/api/v1/session", 20 * MB)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ") and b"connection: close" in head.lower()
    assert json.loads(body) == {"detail": "The body is larger than this endpoint takes (1 MB)."}


async def test_json_routes_take_1_mb_and_uploads_theirs(admin: Admin) -> None:
    over = b"[" + b"{}," * ((BODY_LIMIT - 1) // 3) + b"{}]"
    assert len(over) > BODY_LIMIT
    for method, path, role in (("POST", "/invitations/accept", "owner"),
                               ("PUT", "/responses/utter_greet", "designer")):
        status, body = await admin.call(method, path, role=role, content=over,
                                        headers={"Content-Type": "application/json"})
        assert status == 413 and "(1 MB)" in body["detail"], (path, body)
    # A 2 MB upload passes the body limit and reaches the upload's own checks (its type here).
    status, body = await admin.call("POST", "/knowledge/documents", role="designer",
                                    files={"file": ("tool.exe", b"x" * (2 * MB))})
    assert status == 415, body


async def test_the_largest_texts_a_designer_writes_fit(admin: Admin) -> None:
    """A response at its limits: 20 variants of 4096 characters, 10 buttons each, written in a
    script of 3-byte characters (what a browser sends, JSON unescaped): 0.95 MB, taken."""
    button = {"title": "字" * 200, "payload": "字" * 1000}
    variants = [{"text": "字" * 4096, "channel": None, "buttons": [button] * 10}] * 20
    raw = json.dumps({"variants": variants}, ensure_ascii=False).encode()
    assert 0.9 * MB < len(raw) < BODY_LIMIT
    status, body = await admin.call("PUT", "/responses/utter_greet", role="designer",
                                    content=raw, headers={"Content-Type": "application/json"})
    assert status == 200, body
    assert len(body["effective"]) == 20


async def test_a_json_body_must_say_it_is_json(admin: Admin) -> None:
    """A cross-site `fetch(url, {mode: "no-cors", body})` sends text/plain (or no type) with no
    preflight: every route with a JSON body answers it 415, before its handler runs. An empty
    Content-Type header logged in before."""
    await person(admin, LOGIN["email"])
    browser = Browser(admin)
    raw = json.dumps(LOGIN).encode()
    for headers in ({"Content-Type": ""}, {}, {"Content-Type": "text/plain;charset=UTF-8"}):
        status, body, response = await browser.call("POST", "/session", content=raw,
                                                    headers=headers)
        assert status == 415 and "application/json" in body["detail"], body
        assert "set-cookie" not in response.headers
    plain: dict[str, Any] = {"content": b"{}", "headers": {"Content-Type": "text/plain"}}
    for method, path, role in _json_routes():
        if role == "public":
            status, body, _ = await browser.call(method, path, **plain)
        else:
            status, body = await admin.call(method, path, role=role, **plain)
        assert status == 415 and "application/json" in body["detail"], (method, path, body)
    status, _, _ = await browser.call("POST", "/session", content=raw,
                                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 200
    _, document = await browser.client.get("/openapi.json")
    assert "415" in document.json["paths"]["/api/v1/session"]["post"]["responses"]


async def test_deeply_nested_json_is_a_400_and_no_traceback(
        admin: Admin, caplog: pytest.LogCaptureFixture) -> None:
    browser = Browser(admin)
    deep = b"[" * 100_000 + b"]" * 100_000  # past the parser's recursion limit
    # Parsed, but past the depth the check for unstorable text walks.
    nested = b'{"email": "a@b.example", "password": ' + b"[" * 990 + b"]" * 990 + b"}"
    caplog.set_level(logging.WARNING)
    for path in ("/session", "/invitations/accept", "/invitations/lookup"):
        for raw in (deep, nested):
            status, body, _ = await browser.call(
                "POST", path, content=raw, headers={"Content-Type": "application/json"})
            assert status in (400, 422) and body["detail"], (path, status, body)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
