"""Meta WhatsApp sender against a local Graph API fake over real HTTP."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from connectors.meta_sender import MAX_BODY, MetaWhatsAppSender, split_body
from connectors.outbound import (
    Answer,
    OutboundContext,
    PermanentSendError,
    TransientSendError,
)
from tenants import Tenant
from tests.fakes import load_fixture
from tests.fakes.graph_server import GraphFake

TOKEN = "EAAGm0PX4ZCpsBA-shop"
PHONE_NUMBER_ID = "106540352242922"
TENANT = Tenant(id="t-shop", slug="shop", name="Shop", greeting=None, return_window_days=30,
                order_backend="demo", credentials_encrypted=None)
CREDENTIALS = {"app_secret": "s", "verify_token": "v", "access_token": TOKEN,
               "phone_number_id": PHONE_NUMBER_ID}
TEMPLATE = {"name": "support_follow_up", "language": "en_US"}


def context(*, window_open: bool = True, credentials: dict[str, Any] | None = None,
            to: str = "+16505551234") -> OutboundContext:
    return OutboundContext(
        tenant=TENANT, credentials=credentials or CREDENTIALS, to=to,
        reply_context={"phone_number_id": PHONE_NUMBER_ID, "wa_id": to.lstrip("+")},
        window_open=window_open)


def answer(*messages: dict[str, Any]) -> Answer:
    return Answer(question="where is my order?", messages=tuple(messages))


@pytest.fixture
def graph() -> Iterator[GraphFake]:
    with GraphFake(access_token=TOKEN, phone_number_ids={PHONE_NUMBER_ID},
                   templates={("support_follow_up", "en_US")}) as fake:
        yield fake  # type: ignore[misc]


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def sender(graph: GraphFake, http: httpx.AsyncClient) -> MetaWhatsAppSender:
    return MetaWhatsAppSender(http, api_base=graph.base_url, timeout=2.0)


@pytest.mark.asyncio
async def test_text_goes_to_the_graph_messages_endpoint_and_the_wamid_comes_back(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    ids = await sender.send(context(), [answer({"text": "Order #1042 shipped on Monday."})])
    [request] = graph.requests
    assert request.method == "POST"
    assert request.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json() == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
        "type": "text", "text": {"preview_url": False, "body": "Order #1042 shipped on Monday."},
    }
    assert ids == [graph.sent[0].wamid] and ids[0].startswith("wamid.")


@pytest.mark.asyncio
async def test_links_get_a_preview(graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    await sender.send(context(), [answer({"text": "Track it at https://track.example/1042"})])
    assert graph.sent[0].body["text"]["preview_url"] is True


@pytest.mark.asyncio
async def test_buttons_become_numbered_choices_in_one_body(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    await sender.send(context(), [answer(
        {"text": "What can I help with?",
         "buttons": [{"title": "Order status", "payload": "/order_status"},
                     {"title": "Returns", "payload": "/return"}]},
        {"text": "Or ask me anything."},
    )])
    assert graph.texts == [
        "What can I help with?\n1. Order status\n2. Returns\nReply with a number."
        "\n\nOr ask me anything."]


@pytest.mark.asyncio
async def test_a_long_answer_is_split_at_paragraphs_into_several_messages(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 300 for i in range(10)]  # ~15 kB
    ids = await sender.send(context(), [answer({"text": "\n\n".join(paragraphs)})])
    assert len(ids) == len(graph.sent) > 1 and len(set(ids)) == len(ids)
    assert all(len(text) <= MAX_BODY for text in graph.texts)
    assert all(text.startswith("Paragraph") for text in graph.texts)  # cut between paragraphs
    assert " ".join(" ".join(graph.texts).split()) == " ".join(" ".join(paragraphs).split())


def test_split_body_falls_back_to_words_then_hard_cuts() -> None:
    words = "lorem " * 2000
    parts = split_body(words, 100)
    assert all(len(p) <= 100 and not p.startswith(" ") and p.endswith("lorem") for p in parts)
    assert split_body("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]
    assert split_body("short", 100) == ["short"]
    assert split_body("   ", 100) == []


@pytest.mark.asyncio
async def test_outside_the_window_the_approved_template_is_sent(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    credentials = {**CREDENTIALS, "template": TEMPLATE}
    ids = await sender.send(context(window_open=False, credentials=credentials),
                            [answer({"text": "free text is not allowed now"})])
    [sent] = graph.sent
    assert sent.body == {"messaging_product": "whatsapp", "recipient_type": "individual",
                         "to": "16505551234", "type": "template",
                         "template": {"name": "support_follow_up",
                                      "language": {"code": "en_US"}}}
    assert ids == [sent.wamid]


@pytest.mark.asyncio
async def test_outside_the_window_without_a_template_nothing_is_sent_and_the_reason_is_kept(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await sender.send(context(window_open=False), [answer({"text": "hello again"})])
    assert caught.value.code == "131047"
    assert "24-hour" in caught.value.detail
    assert graph.requests == []


@pytest.mark.asyncio
async def test_a_template_meta_has_not_approved_is_a_permanent_error(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    credentials = {**CREDENTIALS, "template": {"name": "promo_blast", "language": "en_US"}}
    with pytest.raises(PermanentSendError) as caught:
        await sender.send(context(window_open=False, credentials=credentials),
                          [answer({"text": "hello again"})])
    assert caught.value.code == "132001"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_http_429_and_5xx_are_transient(graph: GraphFake, sender: MetaWhatsAppSender,
                                             status: int) -> None:
    graph.fail_next(status)
    with pytest.raises(TransientSendError):
        await sender.send(context(), [answer({"text": "hi"})])
    assert graph.sent == []


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [4, 80007, 130429, 131048, 131056])
async def test_graph_rate_limit_codes_are_transient_even_with_http_400(
        graph: GraphFake, sender: MetaWhatsAppSender, code: int) -> None:
    graph.fail_with(code)
    with pytest.raises(TransientSendError) as caught:
        await sender.send(context(), [answer({"text": "hi"})])
    assert caught.value.code == str(code)
    # and the next attempt (the pipeline's retry) goes through
    assert len(await sender.send(context(), [answer({"text": "hi"})])) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [131026, 131047, 100])
async def test_other_graph_errors_are_permanent_with_their_code(
        graph: GraphFake, sender: MetaWhatsAppSender, code: int) -> None:
    graph.fail_with(code)
    with pytest.raises(PermanentSendError) as caught:
        await sender.send(context(), [answer({"text": "hi"})])
    assert caught.value.code == str(code)


@pytest.mark.asyncio
async def test_a_revoked_access_token_is_permanent_code_190(
        graph: GraphFake, http: httpx.AsyncClient) -> None:
    sender = MetaWhatsAppSender(http, api_base=graph.base_url)
    credentials = {**CREDENTIALS, "access_token": "EAAG-revoked"}
    with pytest.raises(PermanentSendError) as caught:
        await sender.send(context(credentials=credentials), [answer({"text": "hi"})])
    assert caught.value.code == "190"
    assert "EAAG-revoked" not in str(caught.value)


@pytest.mark.asyncio
async def test_an_invalid_number_is_graphs_400_code_100(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await sender.send(context(to="+12"), [answer({"text": "hi"})])
    assert caught.value.code == "100"


@pytest.mark.asyncio
async def test_timeouts_and_unreachable_graph_are_transient(
        graph: GraphFake, http: httpx.AsyncClient) -> None:
    graph.hang_next(3.0)
    sender = MetaWhatsAppSender(http, api_base=graph.base_url, timeout=0.3)
    with pytest.raises(TransientSendError):
        await sender.send(context(), [answer({"text": "hi"})])

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = MetaWhatsAppSender(http, api_base=f"http://127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(TransientSendError):
        await dead.send(context(), [answer({"text": "hi"})])


@pytest.mark.asyncio
async def test_nothing_to_say_sends_nothing(graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    assert await sender.send(context(), [answer(), answer({"custom": {"x": 1}})]) == []
    assert graph.requests == []


def test_fake_answers_and_errors_look_like_the_captured_ones() -> None:
    """The fake's JSON has the captured fixtures' keys, so tests exercise the real shapes."""
    captured = load_fixture("meta", "send_response.json")
    with GraphFake(access_token=TOKEN) as fake:
        response = httpx.post(f"{fake.base_url}/v21.0/{PHONE_NUMBER_ID}/messages",
                              headers={"Authorization": f"Bearer {TOKEN}"},
                              json={"messaging_product": "whatsapp", "to": "16505551234",
                                    "type": "text", "text": {"body": "hi"}})
        assert response.status_code == 200
        assert response.json().keys() == captured.keys()
        assert response.json()["contacts"] == captured["contacts"]
        fake.fail_with(130429)
        limited = httpx.post(f"{fake.base_url}/v21.0/{PHONE_NUMBER_ID}/messages",
                             headers={"Authorization": f"Bearer {TOKEN}"}, json={})
        expected = load_fixture("meta", "error_rate_limited.json")["error"]
        assert limited.json()["error"].keys() == expected.keys()
        assert limited.json()["error"]["message"] == expected["message"]
        invalid = httpx.post(f"{fake.base_url}/v21.0/{PHONE_NUMBER_ID}/messages",
                             headers={"Authorization": f"Bearer {TOKEN}"},
                             json={"messaging_product": "whatsapp", "type": "text"})
        assert invalid.status_code == 400
        expected = load_fixture("meta", "error_invalid_param.json")["error"]
        assert invalid.json()["error"].keys() == expected.keys()
        assert invalid.json()["error"]["code"] == 100
        unauthorized = httpx.post(f"{fake.base_url}/v21.0/{PHONE_NUMBER_ID}/messages", json={})
        assert unauthorized.status_code == 401
        assert unauthorized.json()["error"]["code"] == 190
        assert unauthorized.json()["error"]["type"] == "OAuthException"

