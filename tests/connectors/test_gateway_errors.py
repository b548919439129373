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
from core.settings import Settings, async_database_url
from devtools.bootstrap import migrate, seed
from tests.fakes.rasa_server import RasaFake
from tests.integration.stack import free_port


@pytest.fixture
def silent_rasa() -> Iterator[RasaFake]:
    """Answers like Rasa does when the action server is down: []."""
    with RasaFake(silent=True) as fake:
        yield fake


def make_app(tmp_path: Path, rasa_url: str) -> Sanic:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    migrate(db)
    asyncio.run(seed(async_database_url(db)))
    settings = Settings.from_env({
        "DATABASE_URL": db,
        "SWITCHBOARD_CREDENTIALS_KEY": os.environ["SWITCHBOARD_CREDENTIALS_KEY"],
        "RASA_TOKEN": "t",
        "RASA_URL": rasa_url, "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}",
        "RASA_TIMEOUT": "3", "SWITCHBOARD_VAR_DIR": str(tmp_path),
    })
    return create_app(settings, name=f"gw{free_port()}")


def post(app: Sanic, path: str, content: bytes | str) -> tuple[int, Any]:
    _, response = app.test_client.post(path, content=content,
                                       headers={"Content-Type": "application/json"})
    return response.status, response.json


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
    database = sqlite3.connect(tmp_path / "gw.db")
    rows = database.execute("select text, direction from messages").fetchall()
    assert rows == [("hi", "in")]  # the visitor's message is not lost


def test_action_server_down_is_503_and_tenant_comes_from_the_url(
        tmp_path: Path, silent_rasa: RasaFake) -> None:
    app = make_app(tmp_path, silent_rasa.base_url)
    body = {"sender": "v1", "message": "hi", "metadata": {"tenant_id": "someone-else"}}
    status, payload = post(app, "/channels/demo/rest/webhook", json.dumps(body))
    assert status == 503 and "action server" in payload["detail"]
    sent = silent_rasa.seen[-1]
    tenant_id, channel, user = sent["sender"].split(":", 2)
    assert sent["metadata"]["tenant_id"] == tenant_id != "someone-else"
    assert (channel, user) == ("rest", "v1")


def test_duplicate_message_id_is_handled_once(tmp_path: Path, silent_rasa: RasaFake) -> None:
    app = make_app(tmp_path, silent_rasa.base_url)
    body = json.dumps({"sender": "v1", "message": "hi", "metadata": {"message_id": "m-1"}})
    post(app, "/channels/demo/rest/webhook", body)
    status, payload = post(app, "/channels/demo/rest/webhook", body)
    assert status == 200 and payload == []
    assert len(silent_rasa.seen) == 1
