"""The public edge through the real stack (issue 12, points 1 and 4): REST answers only a shop's
own key, stores nothing for anyone else, and refuses oversized bodies and ids with a 4xx."""

from __future__ import annotations

import subprocess
import time
import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.databases import sync_engine
from tests.integration.conftest import Visitor
from tests.integration.stack import APP_PY, ROOT, Stack

pytestmark = pytest.mark.integration


def post(stack: Stack, body: object, key: str, content: bytes | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if content is not None:
        return httpx.post(f"{stack.gateway}/channels/demo/rest/webhook", content=content,
                          headers={**headers, "Content-Type": "application/json"}, timeout=30)
    return httpx.post(f"{stack.gateway}/channels/demo/rest/webhook", json=body,
                      headers=headers, timeout=30)


def stored_for(stack: Stack, sender: str) -> int:
    engine = sync_engine(stack.database)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM messages WHERE sender_id LIKE :s"),
                                    {"s": f"%:rest:{sender}"}).scalar_one())
    finally:
        engine.dispose()


def tenants_cli(stack: Stack, *args: str) -> str:
    done = subprocess.run([str(APP_PY), "-m", "tenants", *args], cwd=ROOT, env=stack.env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("authorization", [
    None, "Bearer", "Bearer sb_live_000000000000_" + "x" * 43, "Basic dXNlcjpwYXNz",
], ids=["no-header", "no-key", "unknown", "basic"])
def test_rest_without_the_shops_key_is_401_and_stores_nothing(stack: Stack,
                                                              authorization: str | None) -> None:
    sender = f"intruder-{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{stack.gateway}/channels/demo/rest/webhook",
                          json={"sender": sender, "message": "where is my order?"},
                          headers={"Authorization": authorization} if authorization else {},
                          timeout=30)
    assert response.status_code == 401 and "API key" in response.json()["detail"]
    assert stored_for(stack, sender) == 0


def test_a_key_created_and_revoked_with_the_cli(stack: Stack) -> None:
    key = tenants_cli(stack, "keys", "create", "--tenant", "demo", "--name", "revoke me"
                      ).splitlines()[0]
    visitor = Visitor(stack, key=key)
    assert "Demo Outfitters" in visitor.say("hello")
    tenants_cli(stack, "keys", "revoke", "--tenant", "demo", key[:len("sb_live_") + 12])
    # The gateway trusts a checked key for 5 s: messages within that window are answered.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = post(stack, {"sender": visitor.sender, "message": "hi again"}, key)
        if response.status_code == 401:
            break
        time.sleep(0.5)
    assert response.status_code == 401
    stored = stored_for(stack, visitor.sender)
    refused = post(stack, {"sender": visitor.sender, "message": "and again"}, key)
    assert refused.status_code == 401
    assert stored_for(stack, visitor.sender) == stored  # nothing stored once refused
    assert "REVOKED" in tenants_cli(stack, "keys", "list", "--tenant", "demo")


def test_oversized_bodies_and_ids_are_refused_with_4xx(stack: Stack) -> None:
    sender = f"big-{uuid.uuid4().hex[:8]}"
    big = post(stack, None, stack.rest_key, content=b'{"sender": "x", "message": "'
               + b"x" * (2 * 1024 * 1024) + b'"}')
    assert big.status_code == 413 and "64 KB" in big.json()["detail"]
    long_id = post(stack, {"sender": sender, "message": "hi",
                           "metadata": {"message_id": "m" * 300}}, stack.rest_key)
    assert long_id.status_code == 400 and "255" in long_id.json()["detail"]
    unknown = post(stack, {"sender": sender, "message": "hi",
                           "metadata": {"profile": "x" * 5_000_000}}, stack.rest_key)
    assert unknown.status_code == 413  # 5 MB of metadata is refused before it is read
    extra = post(stack, {"sender": sender, "message": "hi", "metadata": {"profile": "x"}},
                 stack.rest_key)
    assert extra.status_code == 400 and "takes only" in extra.json()["detail"]
    assert stored_for(stack, sender) == 0
