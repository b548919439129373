"""The Meta WhatsApp sender: `render` (pure: the Graph API message payloads for the bot's
replies) and `deliver` (one call to a local fake of the Graph API over real HTTP,
tests/fakes/graph_server.py).

Retries, partial sends, delivery records and the window decision are the outbox's
(tests/connectors/test_outbox.py).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from connectors.channels.meta.sender import MetaWhatsAppSender
from connectors.outbound import OutboundContext, PermanentSendError, Reply, TransientSendError
from connectors.splitting import WHATSAPP_MAX_BODY, split_for_whatsapp
from tests.connectors.channels.harness import shop
from tests.fakes import load_fixture
from tests.fakes.graph_server import MAX_BODY, GraphFake

TOKEN = "EAAGm0PX4ZCpsBA-shop"
PHONE_NUMBER_ID = "106540352242922"
TENANT = shop()
CREDENTIALS = {"app_secret": "s", "verify_token": "v", "access_token": TOKEN,
               "phone_number_id": PHONE_NUMBER_ID}
TEMPLATE = {"name": "support_follow_up", "language": "en_US"}
VISITOR = "+16505551234"


def context(*, window_open: bool = True, credentials: dict[str, Any] | None = None,
            to: str = VISITOR) -> OutboundContext:
    return OutboundContext(
        tenant=TENANT, credentials=CREDENTIALS if credentials is None else credentials, to=to,
        reply_context={"phone_number_id": PHONE_NUMBER_ID, "wa_id": to.lstrip("+")},
        window_open=window_open)


def reply(*messages: dict[str, Any]) -> Reply:
    return Reply(question="where is my order?", messages=tuple(messages))


def text_payload(body: str, preview_url: bool = False) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
            "type": "text", "text": {"preview_url": preview_url, "body": body}}


@pytest.fixture
def graph() -> Iterator[GraphFake]:
    with GraphFake(access_token=TOKEN, phone_number_ids={PHONE_NUMBER_ID},
                   templates={("support_follow_up", "en_US")}) as fake:
        yield fake


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def sender(graph: GraphFake, http: httpx.AsyncClient) -> MetaWhatsAppSender:
    return MetaWhatsAppSender(http, api_base=graph.base_url, timeout=2.0)


async def send(sender: MetaWhatsAppSender, context: OutboundContext,
               *replies: Reply) -> list[str]:
    """Render, then deliver every part once, in order (what the outbox does when all goes well)."""
    return [await sender.deliver(context, part) for part in sender.render(context, replies)]


# -- render ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_text_is_rendered_as_one_graph_text_message(sender: MetaWhatsAppSender) -> None:
    parts = sender.render(context(), [reply({"text": "Order #1042 shipped on Monday."})])
    assert parts == [text_payload("Order #1042 shipped on Monday.")]


@pytest.mark.asyncio
async def test_links_get_a_preview(sender: MetaWhatsAppSender) -> None:
    [part] = sender.render(context(), [reply({"text": "Track it at https://track.example/1042"})])
    assert part["text"]["preview_url"] is True


@pytest.mark.asyncio
async def test_buttons_become_numbered_choices_in_one_body(sender: MetaWhatsAppSender) -> None:
    parts = sender.render(context(), [reply(
        {"text": "What can I help with?",
         "buttons": [{"title": "Order status", "payload": "/order_status"},
                     {"title": "Returns", "payload": "/return"}]},
        {"text": "Or ask me anything."},
    )])
    assert [p["text"]["body"] for p in parts] == [
        "What can I help with?\n1. Order status\n2. Returns\nReply with a number."
        "\n\nOr ask me anything."]


@pytest.mark.asyncio
async def test_a_long_answer_is_split_at_paragraphs_by_whatsapps_rules(
    sender: MetaWhatsAppSender,
) -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 300 for i in range(10)]  # ~15 kB
    text = "\n\n".join(paragraphs)
    bodies = [p["text"]["body"] for p in sender.render(context(), [reply({"text": text})])]
    assert len(bodies) > 1
    assert all(len(body) <= WHATSAPP_MAX_BODY <= MAX_BODY for body in bodies)
    assert all(body.startswith("Paragraph") for body in bodies)  # cut between paragraphs
    assert " ".join(" ".join(bodies).split()) == " ".join(" ".join(paragraphs).split())
    assert bodies == split_for_whatsapp(text)  # the same parts as through Twilio


@pytest.mark.asyncio
async def test_outside_the_window_the_approved_template_is_rendered(
    sender: MetaWhatsAppSender,
) -> None:
    credentials = {**CREDENTIALS, "template": TEMPLATE}
    parts = sender.render(context(window_open=False, credentials=credentials),
                          [reply({"text": "free text is not allowed now"})])
    assert parts == [{"messaging_product": "whatsapp", "recipient_type": "individual",
                      "to": "16505551234", "type": "template",
                      "template": {"name": "support_follow_up",
                                   "language": {"code": "en_US"}}}]


@pytest.mark.asyncio
@pytest.mark.parametrize(("language", "code"), [({"code": "de"}, "de"), (None, "en")])
async def test_a_templates_language_may_be_given_as_graph_does_or_left_out(
    sender: MetaWhatsAppSender, language: Any, code: str
) -> None:
    template = {"name": "support_follow_up", "language": language}
    [part] = sender.render(context(window_open=False,
                                   credentials={**CREDENTIALS, "template": template}),
                           [reply({"text": "hello again"})])
    assert part["template"]["language"] == {"code": code}


@pytest.mark.asyncio
async def test_outside_the_window_without_a_template_nothing_is_sent_and_the_reason_is_kept(
    graph: GraphFake, sender: MetaWhatsAppSender
) -> None:
    with pytest.raises(PermanentSendError) as caught:
        sender.render(context(window_open=False), [reply({"text": "hello again"})])
    assert caught.value.code == "131047"
    assert "24-hour" in caught.value.detail
    assert graph.requests == []


@pytest.mark.asyncio
@pytest.mark.parametrize("window_open", [True, False])
async def test_nothing_to_say_renders_nothing_not_even_a_template(
    graph: GraphFake, sender: MetaWhatsAppSender, window_open: bool
) -> None:
    credentials = {**CREDENTIALS, "template": TEMPLATE}
    assert sender.render(context(window_open=window_open, credentials=credentials),
                         [reply(), reply({"custom": {"x": 1}})]) == []
    assert graph.requests == []


@pytest.mark.asyncio
@pytest.mark.parametrize("missing", ["access_token", "phone_number_id"])
async def test_incomplete_credentials_are_permanent(sender: MetaWhatsAppSender,
                                                    missing: str) -> None:
    with pytest.raises(PermanentSendError, match="not configured"):
        sender.render(context(credentials={**CREDENTIALS, missing: ""}), [reply({"text": "hi"})])


@pytest.mark.asyncio
async def test_an_address_without_digits_is_not_a_whatsapp_number(
    sender: MetaWhatsAppSender,
) -> None:
    with pytest.raises(PermanentSendError, match="not a WhatsApp number"):
        sender.render(context(to="visitor@example.com"), [reply({"text": "hi"})])


# -- deliver -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_text_goes_to_the_graph_messages_endpoint_and_the_wamid_comes_back(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    ids = await send(sender, context(), reply({"text": "Order #1042 shipped on Monday."}))
    [request] = graph.requests
    assert request.method == "POST"
    assert request.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json() == text_payload("Order #1042 shipped on Monday.")
    assert ids == [graph.sent[0].wamid] and ids[0].startswith("wamid.")


@pytest.mark.asyncio
async def test_every_part_of_a_long_answer_is_accepted_by_graph(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 300 for i in range(10)]
    ids = await send(sender, context(), reply({"text": "\n\n".join(paragraphs)}))
    assert len(ids) == len(graph.sent) > 1 and len(set(ids)) == len(ids)
    assert [s.wamid for s in graph.sent] == ids  # in the order delivered
    assert all(text.startswith("Paragraph") for text in graph.texts)


@pytest.mark.asyncio
async def test_outside_the_window_the_approved_template_is_sent(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    credentials = {**CREDENTIALS, "template": TEMPLATE}
    ids = await send(sender, context(window_open=False, credentials=credentials),
                     reply({"text": "free text is not allowed now"}))
    [sent] = graph.sent
    assert sent.body == {"messaging_product": "whatsapp", "recipient_type": "individual",
                         "to": "16505551234", "type": "template",
                         "template": {"name": "support_follow_up",
                                      "language": {"code": "en_US"}}}
    assert ids == [sent.wamid]


@pytest.mark.asyncio
async def test_a_template_meta_has_not_approved_is_a_permanent_error(
        sender: MetaWhatsAppSender) -> None:
    credentials = {**CREDENTIALS, "template": {"name": "promo_blast", "language": "en_US"}}
    with pytest.raises(PermanentSendError) as caught:
        await send(sender, context(window_open=False, credentials=credentials),
                   reply({"text": "hello again"}))
    assert caught.value.code == "132001"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_http_429_and_5xx_are_transient(graph: GraphFake, sender: MetaWhatsAppSender,
                                             status: int) -> None:
    graph.fail_next(status)
    with pytest.raises(TransientSendError):
        await send(sender, context(), reply({"text": "hi"}))
    assert graph.sent == []


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [4, 80007, 130429, 131048, 131056])
async def test_graph_rate_limit_codes_are_transient_even_with_http_400(
        graph: GraphFake, sender: MetaWhatsAppSender, code: int) -> None:
    graph.fail_with(code)
    with pytest.raises(TransientSendError) as caught:
        await send(sender, context(), reply({"text": "hi"}))
    assert caught.value.code == str(code)
    # the limit was for that call only: the same part delivered again goes through
    assert len(await send(sender, context(), reply({"text": "hi"}))) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [131026, 131047, 100])
async def test_other_graph_errors_are_permanent_with_their_code(
        graph: GraphFake, sender: MetaWhatsAppSender, code: int) -> None:
    graph.fail_with(code)
    with pytest.raises(PermanentSendError) as caught:
        await send(sender, context(), reply({"text": "hi"}))
    assert caught.value.code == str(code)


@pytest.mark.asyncio
async def test_a_revoked_access_token_is_permanent_code_190(
        graph: GraphFake, http: httpx.AsyncClient) -> None:
    sender = MetaWhatsAppSender(http, api_base=graph.base_url)
    credentials = {**CREDENTIALS, "access_token": "EAAG-revoked"}
    with pytest.raises(PermanentSendError) as caught:
        await send(sender, context(credentials=credentials), reply({"text": "hi"}))
    assert caught.value.code == "190"
    assert "EAAG-revoked" not in str(caught.value)


@pytest.mark.asyncio
async def test_an_invalid_number_is_graphs_400_code_100(sender: MetaWhatsAppSender) -> None:
    with pytest.raises(PermanentSendError) as caught:
        await send(sender, context(to="+12"), reply({"text": "hi"}))
    assert caught.value.code == "100"


@pytest.mark.asyncio
async def test_an_answer_without_a_wamid_is_permanent_so_it_is_never_sent_twice(
        graph: GraphFake, sender: MetaWhatsAppSender) -> None:
    graph.fail_next(200)  # a 200 whose body has no messages[0].id
    with pytest.raises(PermanentSendError, match="without a message id"):
        await send(sender, context(), reply({"text": "hi"}))


@pytest.mark.asyncio
async def test_timeouts_and_unreachable_graph_are_transient(
        graph: GraphFake, http: httpx.AsyncClient) -> None:
    graph.hang_next(3.0)
    sender = MetaWhatsAppSender(http, api_base=graph.base_url, timeout=0.3)
    with pytest.raises(TransientSendError):
        await send(sender, context(), reply({"text": "hi"}))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = MetaWhatsAppSender(http, api_base=f"http://127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(TransientSendError):
        await send(dead, context(), reply({"text": "hi"}))


@pytest.mark.asyncio
async def test_tokens_texts_and_numbers_never_reach_the_logs(
        graph: GraphFake, sender: MetaWhatsAppSender, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret_text = "My card ends in 4242"
    await send(sender, context(), reply({"text": secret_text}))
    graph.fail_with(131026)
    with pytest.raises(PermanentSendError):
        await send(sender, context(), reply({"text": secret_text}))
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "whatsapp message sent" in logged and "whatsapp send failed" in logged
    for secret in (TOKEN, secret_text, "16505551234"):
        assert secret not in logged, secret


# -- the fake itself answers like Graph ------------------------------------------------------


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
