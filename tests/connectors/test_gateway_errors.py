"""The gateway's answers to bad input and dead upstreams: clear 4xx/503 JSON, never a hang."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sanic import Sanic

from connectors.app import create_app
from core.db import create_engine, session_factory
from core.settings import Settings, async_database_url
from devtools.bootstrap import seed
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.api_keys import issue_key, revoke_key
from tests.databases import database_params, migrated_sqlite, migrated_url, sync_engine
from tests.fakes.rasa_server import RasaFake
from tests.servers import free_port, serving


@pytest.fixture
def silent_rasa() -> Iterator[RasaFake]:
    """Answers like Rasa does when the action server is down: []."""
    with RasaFake(silent=True) as fake:
        yield fake


def make_app(tmp_path: Path, rasa_url: str, db: str | None = None) -> Sanic:
    """The gateway on a seeded database: `db` (a migrated one's URL), else SQLite in gw.db."""
    db = db or migrated_sqlite(tmp_path / "gw.db")
    asyncio.run(seed(async_database_url(db)))
    settings = Settings.from_env({
        "DATABASE_URL": db,
        "SWITCHBOARD_CREDENTIALS_KEY": os.environ["SWITCHBOARD_CREDENTIALS_KEY"],
        "RASA_TOKEN": "t",
        "RASA_URL": rasa_url, "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}",
        "RASA_TIMEOUT": "3", "SWITCHBOARD_VAR_DIR": str(tmp_path),
    })
    app = create_app(settings, name=f"gw{free_port()}")
    app.ctx.rest_key = asyncio.run(new_key(async_database_url(db)))
    return app


async def new_key(url: str, revoked: bool = False) -> str:
    """A REST key of the demo shop in this database (revoked at once if asked)."""
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        issued = await issue_key(sessions, DEMO_TENANT_ID, "tests")
        if revoked:
            await revoke_key(sessions, DEMO_TENANT_ID, issued.key.prefix)
        return issued.secret
    finally:
        await engine.dispose()


def post(app: Sanic, path: str, content: Any, key: str | None = None) -> tuple[int, Any]:
    """With the demo shop's key unless `key` says otherwise ("" for none)."""
    headers = {"Content-Type": "application/json"}
    key = app.ctx.rest_key if key is None else key
    if key:
        headers["Authorization"] = f"Bearer {key}"
    _, response = app.test_client.post(path, content=content, headers=headers)
    return response.status, response.json


def stored(tmp_path: Path) -> list[tuple[str, str]]:
    database = sqlite3.connect(tmp_path / "gw.db")
    try:
        return database.execute("select text, direction from messages").fetchall()
    finally:
        database.close()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "must be JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"message": "hi"}', "'sender'"),
        (b'{"sender": "", "message": "hi"}', "'sender'"),
        (b'{"sender": "a", "message": "   "}', "'message'"),
        (b'{"sender": "a", "message": 5}', "'message'"),
        (b'{"sender": "a", "message": "hi", "metadata": "x"}', "'metadata'"),
        (json.dumps({"sender": "a", "message": "x" * 5000}).encode(), "longer than"),
    ],
)
def test_malformed_body_is_400_with_detail(tmp_path: Path, body: bytes, fragment: str) -> None:
    app = make_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    status, payload = post(app, "/channels/demo/rest/webhook", body)
    assert status == 400 and fragment in payload["detail"]


def test_unknown_tenant_is_404(tmp_path: Path) -> None:
    app = make_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    status, payload = post(app, "/channels/nope/rest/webhook", b'{"sender": "a", "message": "hi"}')
    assert status == 404 and "nope" in payload["detail"]


def test_rasa_unreachable_is_503_and_message_kept(tmp_path: Path) -> None:
    app = make_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    status, payload = post(app, "/channels/demo/rest/webhook", b'{"sender": "a", "message": "hi"}')
    assert status == 503 and "not reachable" in payload["detail"]
    assert stored(tmp_path) == [("hi", "in")]  # the visitor's message is not lost


def test_action_server_down_is_503_and_tenant_comes_from_the_url(
        tmp_path: Path, silent_rasa: RasaFake) -> None:
    app = make_app(tmp_path, silent_rasa.base_url)
    body = {"sender": "v1", "message": "hi", "metadata": {"locale": "de"}}
    status, payload = post(app, "/channels/demo/rest/webhook", json.dumps(body))
    assert status == 503 and "action server" in payload["detail"]
    sent = silent_rasa.seen[-1]
    tenant_id, channel, user = sent["sender"].split(":", 2)
    assert sent["metadata"]["tenant_id"] == tenant_id == DEMO_TENANT_ID
    assert (channel, user, sent["metadata"]["locale"]) == ("rest", "v1", "de")


def test_duplicate_message_id_is_handled_once(tmp_path: Path, silent_rasa: RasaFake) -> None:
    app = make_app(tmp_path, silent_rasa.base_url)
    body = json.dumps({"sender": "v1", "message": "hi", "metadata": {"message_id": "m-1"}})
    post(app, "/channels/demo/rest/webhook", body)
    status, payload = post(app, "/channels/demo/rest/webhook", body)
    assert status == 200 and payload == []
    assert len(silent_rasa.seen) == 1


# --- the public edge (issue 12): the shop's key, bounded input -------------------------------


@pytest.mark.parametrize("key", ["", "sb_live_000000000000_" + "x" * 43, "revoked"],
                         ids=["missing", "wrong", "revoked"])
def test_rest_without_a_valid_key_is_401_and_nothing_is_stored(
        tmp_path: Path, silent_rasa: RasaFake, key: str) -> None:
    app = make_app(tmp_path, silent_rasa.base_url)
    if key == "revoked":
        key = asyncio.run(new_key(async_database_url(f"sqlite:///{tmp_path / 'gw.db'}"),
                                  revoked=True))
    status, payload = post(app, "/channels/demo/rest/webhook",
                           b'{"sender": "a", "message": "hi"}', key=key)
    assert status == 401 and "API key" in payload["detail"]
    assert stored(tmp_path) == [] and silent_rasa.seen == []


def test_rest_with_the_key_reaches_the_bot(tmp_path: Path, silent_rasa: RasaFake) -> None:
    app = make_app(tmp_path, silent_rasa.base_url)
    post(app, "/channels/demo/rest/webhook", b'{"sender": "a", "message": "hi"}')
    assert stored(tmp_path) == [("hi", "in")] and len(silent_rasa.seen) == 1
    database = sqlite3.connect(tmp_path / "gw.db")
    [(last_used,)] = database.execute("select last_used_at from api_keys").fetchall()
    assert last_used is not None


async def first_answer(app: Sanic, path: str, length: int | None, sent: bytes) -> bytes:
    """Start the app's real HTTP server, announce a body of `length` bytes (None: chunked),
    send only `sent` of it and return what the server answers before it closes."""
    port = free_port()
    async with serving(app, port=port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        framing = (f"Content-Length: {length}" if length is not None
                   else "Transfer-Encoding: chunked")
        writer.write(f"POST {path} HTTP/1.1\r\nHost: gateway\r\n"
                     f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode() + sent)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)  # read() ends when the server closes
        writer.close()
        return answer


@pytest.mark.parametrize(("path", "megabytes", "limit"), [
    ("/channels/demo/rest/webhook", 2, "64 KB"),
    ("/channels/demo/twilio/messages", 2, "128 KB"),
    ("/channels/demo/twilio/status", 2, "128 KB"),
    ("/channels/demo/whatsapp/webhook", 5, "4 MB"),  # Meta batches up to 3 MB
    ("/channels/demo/email/mailgun", 33, "32 MB"),  # mail up to 25-30 MB with attachments
    ("/channels/demo/email/sendgrid", 33, "32 MB"),
])
def test_a_body_over_the_routes_limit_is_413_before_it_is_read(
        tmp_path: Path, path: str, megabytes: int, limit: str) -> None:
    app = make_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    answer = asyncio.run(first_answer(app, path, megabytes * 1024 * 1024, b"x" * 65536))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ") and b"connection: close" in head.lower()
    assert json.loads(body) == {"detail": f"The body is larger than this endpoint takes ({limit})."}
    assert stored(tmp_path) == []


def test_a_2_mb_rest_body_is_413_through_a_client(tmp_path: Path) -> None:
    app = make_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    status, payload = post(app, "/channels/demo/rest/webhook", b"x" * (2 * 1024 * 1024))
    assert status == 413 and "64 KB" in payload["detail"] and stored(tmp_path) == []


def test_a_chunked_body_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    app = make_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)  # no length up front: 5 chunks of 16 KB
    answer = asyncio.run(first_answer(app, "/channels/demo/rest/webhook", None, chunk * 5))
    assert answer.startswith(b"HTTP/1.1 413 ") and stored(tmp_path) == []


@pytest.mark.parametrize("path", ["/channels/demo/email/mailgun",
                                  "/channels/demo/whatsapp/webhook"])
def test_the_provider_routes_take_a_2_mb_body(tmp_path: Path, path: str) -> None:
    app = make_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    # The demo shop here has no channel credentials: 404 once the body was taken, not 413.
    status, _ = post(app, path, b"x" * (2 * 1024 * 1024))
    assert status == 404


def test_a_message_id_longer_than_its_column_is_400(tmp_path: Path,
                                                    silent_rasa: RasaFake) -> None:
    app = make_app(tmp_path, silent_rasa.base_url)
    body = {"sender": "a", "message": "hi", "metadata": {"message_id": "m" * 256}}
    status, payload = post(app, "/channels/demo/rest/webhook", json.dumps(body))
    assert status == 400 and "255" in payload["detail"]
    assert stored(tmp_path) == [] and silent_rasa.seen == []


@pytest.mark.parametrize("kind", database_params())
def test_characters_no_database_stores_are_cleaned_from_text_and_refused_in_ids(
        tmp_path: Path, kind: str) -> None:
    """JSON can spell a lone surrogate and NUL; stored, either was a 500 (PostgreSQL refuses
    NUL, no driver encodes a lone surrogate). The visitor's text keeps the rest."""
    db = migrated_url(kind, tmp_path)
    with RasaFake() as rasa:
        app = make_app(tmp_path, rasa.base_url, db)
        status, replies = post(app, "/channels/demo/rest/webhook",
                               rb'{"sender": "a", "message": "size \ud800 M\u0000?", '
                               rb'"metadata": {"page_url": "/p\udfff"}}')
        assert status == 200 and replies
        assert rasa.seen[0]["message"] == "size \ufffd M?"
        for sender in (rb"a\u0000", rb"\udc80b"):
            status, payload = post(app, "/channels/demo/rest/webhook",
                                   b'{"sender": "' + sender + b'", "message": "hi"}')
            assert status == 400 and "NUL characters or unpaired surrogates" in payload["detail"]
    engine = sync_engine(db)
    with engine.connect() as connection:
        texts = connection.exec_driver_sql("select text from messages where direction = 'in'")
        assert [text for (text,) in texts] == ["size \ufffd M?"]
    engine.dispose()


async def frame_too_large(app: Sanic) -> int | None:
    """Open the demo shop's widget socket on the real server, send a 100 KB frame and return
    the close code the server answers with."""
    import websockets

    async with serving(app) as base:
        url = "ws" + base.removeprefix("http") + "/channels/demo/web/socket?key=pk_demo_outfitters"
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "hello", "token": None}))
            await ws.recv()  # the session frame
            await ws.send(json.dumps({"type": "message", "text": "x" * 100_000}))
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None


def test_a_widget_frame_over_64_kb_closes_the_socket(tmp_path: Path) -> None:
    app = make_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    assert asyncio.run(frame_too_large(app)) == 1009  # "message too big"
    assert stored(tmp_path) == []
