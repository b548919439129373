"""Text no database keeps (NUL, "\\u0000" in JSON; a lone surrogate, "\\ud800") is a 422 that
says where it is, on every route that parses a JSON body, a query or a path, and in a YAML
draft: never a 500 (PostgreSQL refuses NUL in text, no driver encodes a surrogate) and never
a draft that stops being YAML (SQLite keeps a NUL; every later gap accepted into it was a 409).
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from admin_api.api import API
from admin_api.training.drafts import (
    UnstorableDraft,
    read_draft,
    store_draft,
    update_drafts,
)
from tests.admin_api.conftest import Admin
from tests.admin_api.test_training_drafts import NLU, put

pytestmark = pytest.mark.asyncio

NUL, SURROGATE = "\u0000", "\udfff"
ROLES = ("owner", "designer", "agent")


async def send(admin: Admin, method: str, path: str, body: Any, role: str = "designer"
               ) -> tuple[int, Any]:
    """As a client sends JSON: non-ASCII escaped, so a lone surrogate is "\\udfff"."""
    return await admin.call(method, path, role=role, content=json.dumps(body).encode("ascii"),
                            headers={"Content-Type": "application/json"})


def _refused(status: int, answer: Any) -> bool:
    return status == 422 and any(isinstance(e, dict) and e.get("type") == "string_unstorable"
                                 for e in answer["detail"])


def _json_routes() -> list[tuple[str, str, str]]:
    """(method, path, role) of every route with a JSON body that a shop's people (or anyone)
    may call; path parameters filled with a harmless value."""
    found = []
    for endpoint in API.endpoints:
        if endpoint.body is None:
            continue
        role = "public" if endpoint.public else next(
            (r for r in ROLES if r in endpoint.roles), None)
        if role is not None:
            found.append((endpoint.method, re.sub(r"{\w+}", "1", endpoint.path), role))
    return found


async def test_every_json_body_refuses_nul_and_lone_surrogates(admin: Admin) -> None:
    routes = _json_routes()
    assert len(routes) >= 15  # settings, responses, notes, replies, webhooks, gaps, users...
    for method, path, role in routes:
        for bad in ({"text": f"a{NUL}b"}, {"text": f"a{SURROGATE}b"},
                    {"nested": [{"ok": "fine"}, {f"key{NUL}": 1}]}):
            status, answer = await send(admin, method, path, bad,
                                        role="owner" if role == "public" else role)
            assert _refused(status, answer), (method, path, bad, status, answer)


async def test_the_answer_says_where_the_character_is(admin: Admin) -> None:
    status, answer = await send(admin, "PUT", "/responses/utter_greet", {
        "variants": [{"text": "Hi!", "channel": None, "buttons": []},
                     {"text": f"Hi{NUL}there", "channel": None,
                      "buttons": [{"title": "ok", "payload": f"/affirm{SURROGATE}"}]}]})
    assert status == 422
    assert [e["loc"] for e in answer["detail"]] == [["variants", 1, "text"],
                                                   ["variants", 1, "buttons", 0, "payload"]]
    assert "NUL" in answer["detail"][0]["msg"]
    # nothing was stored: the greeting is still the default
    status, response = await admin.call("GET", "/responses/utter_greet", role="designer")
    assert status == 200 and response["override"] is None


async def test_a_response_text_with_nul_is_refused_and_a_clean_one_stored(admin: Admin) -> None:
    status, _ = await send(admin, "PUT", "/responses/utter_greet", {
        "variants": [{"text": f"Hello{NUL}", "channel": None, "buttons": []}]})
    assert status == 422
    status, response = await admin.call("PUT", "/responses/utter_greet", role="designer", json={
        "variants": [{"text": "Hello ☃ 👋", "channel": None, "buttons": []}]})
    assert status == 200, response
    assert response["effective"][0]["text"] == "Hello ☃ 👋"


@pytest.mark.parametrize("example", [f"bad {SURROGATE} surrogate", f"a{NUL}b"])
async def test_a_gap_accept_with_such_an_example_writes_no_draft(admin: Admin,
                                                                 example: str) -> None:
    status, answer = await send(admin, "POST", "/gaps/0123456789abcdef/accept", {
        "intent": "ask_x", "examples": [example], "draft": "surr"})
    assert _refused(status, answer), (status, answer)
    assert answer["detail"][0]["loc"] == ["examples", 0]
    assert await read_draft(admin.sessions, admin.demo.id, "nlu", "surr") is None


async def test_a_yaml_draft_with_a_nul_is_refused_and_not_stored(admin: Admin) -> None:
    text = NLU.replace("\n", f"\n# a comment{NUL}\n", 2)
    status, answer = await put(admin, "nlu", "nul", text)
    assert status == 422, answer
    assert "NUL" in answer["detail"] and "line 2" in answer["detail"]
    assert await read_draft(admin.sessions, admin.demo.id, "nlu", "nul") is None


async def test_drafts_never_store_such_text_whoever_writes_them(admin: Admin) -> None:
    """The storage itself refuses it too (the gap accept writes through update_drafts)."""
    shop = admin.demo.id
    with pytest.raises(UnstorableDraft, match="nlu/gaps.yml would hold U\\+0000 on line 3"):
        await store_draft(admin.sessions, shop, "nlu", "gaps", f"a\nb\nc{NUL}\n", "test")
    await store_draft(admin.sessions, shop, "nlu", "gaps", NLU, "test")

    def edit(drafts: Any) -> dict[tuple[str, str], str]:
        return {("nlu", "gaps"): drafts[("nlu", "gaps")] + f"    - {SURROGATE}\n",
                ("domain", "gaps"): "intents:\n  - ask_x\n"}

    with pytest.raises(UnstorableDraft, match="U\\+DFFF"):
        await update_drafts(admin.sessions, shop, edit, "test")
    assert await read_draft(admin.sessions, shop, "nlu", "gaps") == NLU  # all or nothing
    assert await read_draft(admin.sessions, shop, "domain", "gaps") is None


@pytest.mark.parametrize("query", ["q=a%00b", "channel=%00"])
async def test_a_query_with_nul_is_refused(admin: Admin, query: str) -> None:
    status, answer = await admin.call("GET", f"/conversations?{query}")
    assert _refused(status, answer), (status, answer)

