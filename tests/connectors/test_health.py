"""/health tells the public ok or degraded and nothing else; /health/details answers the host
(or a HEALTH_TOKEN bearer) with short codes, never exception texts or secrets, whatever Rasa
answers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from sanic import Sanic

from connectors.app import create_app
from core.settings import Settings
from tests.databases import migrated_sqlite
from tests.fakes import FakeServer, RecordedRequest, Response
from tests.servers import free_port

RASA_TOKEN = "rasa-token-do-not-leak"
HEALTH_TOKEN = "health-token-for-the-monitor"


class StatusRasa(FakeServer):
    """Rasa's GET /status answering `status`, with a body that quotes the URL it was asked
    (as httpx's error texts do), and what each request carried (`requests`). Started when made."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status
        self.start()

    def authorized(self, request: RecordedRequest) -> bool:
        return True  # what the gateway sent is the test's to check

    def route(self, request: RecordedRequest) -> Response:
        if self.status == 200:
            return 200, {}, {"model_id": "m1", "model_file": "switchboard.tar.gz"}
        return self.status, {}, {"status": "failure", "message": f"refused {request.path}"}

    def close(self) -> None:
        self.stop()


@pytest.fixture
def database(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "gw.db")


def make_app(tmp_path: Path, database: str, rasa_url: str) -> tuple[Sanic, Settings]:
    settings = Settings.from_env({
        "DATABASE_URL": database,
        "SWITCHBOARD_CREDENTIALS_KEY": os.environ["SWITCHBOARD_CREDENTIALS_KEY"],
        "RASA_TOKEN": RASA_TOKEN, "HEALTH_TOKEN": HEALTH_TOKEN,
        "RASA_URL": rasa_url, "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}",
        "RASA_TIMEOUT": "3", "SWITCHBOARD_VAR_DIR": str(tmp_path),
    })
    return create_app(settings, name=f"gw{free_port()}"), settings


def get(app: Sanic, path: str, **headers: str) -> tuple[int, Any, str]:
    _, response = app.test_client.get(path, headers=headers)
    return response.status, response.json, response.text


@pytest.fixture
def rasa_401() -> Iterator[StatusRasa]:
    fake = StatusRasa(401)
    yield fake
    fake.close()


def test_public_health_says_ok_or_degraded_only(tmp_path: Path, database: str) -> None:
    app, _ = make_app(tmp_path, database, f"http://127.0.0.1:{free_port()}")
    status, body, _ = get(app, "/health")
    assert (status, body) == (503, {"status": "degraded"})


def test_details_on_loopback_name_each_dependency_with_codes(tmp_path: Path,
                                                             database: str) -> None:
    app, _ = make_app(tmp_path, database, f"http://127.0.0.1:{free_port()}")
    status, body, _ = get(app, "/health/details")
    assert status == 503 and body["status"] == "degraded"
    checks = body["checks"]
    assert checks["database"] == {"ok": True, "kind": "sqlite"}
    assert checks["rasa"] == {"ok": False, "error": "ConnectError"}
    assert checks["actions"] == {"ok": False, "error": "not_answering"}
    # No Rasa has created its events table: the driver's text would name it, the code does not.
    assert checks["tracker_store"] == {"ok": False, "error": "OperationalError"}


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-For": "203.0.113.7"},  # a proxy on this host relays a visitor
    {"Forwarded": "for=203.0.113.7"},
    {"X-Forwarded-For": "203.0.113.7", "Authorization": "Bearer wrong"},
    {"X-Real-IP": "203.0.113.7", "Authorization": f"Basic {HEALTH_TOKEN}"},
])
def test_details_refuse_proxied_requests_without_the_token(tmp_path: Path, database: str,
                                                            headers: dict[str, str]) -> None:
    app, _ = make_app(tmp_path, database, f"http://127.0.0.1:{free_port()}")
    status, body, text = get(app, "/health/details", **headers)
    assert status == 403 and "checks" not in body and "sqlite" not in text


def test_details_answer_the_health_token_from_anywhere(tmp_path: Path, database: str) -> None:
    app, _ = make_app(tmp_path, database, f"http://127.0.0.1:{free_port()}")
    status, body, _ = get(app, "/health/details", **{
        "X-Forwarded-For": "203.0.113.7", "Authorization": f"Bearer {HEALTH_TOKEN}"})
    assert status == 503 and body["checks"]["database"]["ok"] is True


@pytest.mark.parametrize("rasa_status", [401, 409, 500])
def test_nothing_leaks_when_rasa_refuses(tmp_path: Path, database: str, rasa_status: int,
                                         caplog: pytest.LogCaptureFixture) -> None:
    rasa = StatusRasa(rasa_status)
    try:
        app, settings = make_app(tmp_path, database, rasa.base_url)
        with caplog.at_level(logging.DEBUG):
            public = get(app, "/health")
            details = get(app, "/health/details")
    finally:
        rasa.close()
    assert public[:2] == (503, {"status": "degraded"})
    assert details[1]["checks"]["rasa"] == {"ok": False, "error": f"http_{rasa_status}"}
    # The secret travels in a header, as a signed short-lived token, never in the URL.
    request = rasa.requests[-1]
    assert request.path == "/status"
    scheme, token = request.headers["authorization"].split(" ")
    claims = jwt.decode(token, settings.rasa_jwt_key.reveal(), algorithms=["HS256"])
    assert scheme == "Bearer" and claims["user"]["role"] == "admin" and claims["exp"]
    for secret in (RASA_TOKEN, settings.rasa_jwt_key.reveal(), token, "token=", "refused"):
        assert secret not in public[2] and secret not in details[2]
        assert secret not in caplog.text


def test_healthy_details_show_the_model(tmp_path: Path, database: str) -> None:
    rasa = StatusRasa(200)
    try:
        app, _ = make_app(tmp_path, database, rasa.base_url)
        _, body, _ = get(app, "/health/details")
    finally:
        rasa.close()
    assert body["checks"]["rasa"] == {"ok": True, "model": "switchboard.tar.gz"}
