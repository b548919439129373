"""The Twilio sender: `render` (pure: the Messages API forms for the bot's replies) and
`deliver` (one call to a local fake of the Messages API, tests/fakes/twilio_server.py).

Retries, partial sends and delivery records are the outbox's (tests/connectors/test_outbox.py).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import pytest_asyncio
from twilio.request_validator import RequestValidator

from connectors.channels.twilio import CHANNEL
from connectors.channels.twilio.sender import TwilioSender
from connectors.outbound import OutboundContext, PermanentSendError, Reply, TransientSendError
from connectors.splitting import segments, split_for_whatsapp
from tenants import Tenant
from tests.connectors.channels.harness import shop
from tests.connectors.channels.twilio.harness import (
    ACCOUNT,
    CREDENTIALS,
    PUBLIC,
    SHOP_SMS,
    SHOP_WHATSAPP,
    SLUG,
    TOKEN,
    TwilioHarness,
)
from tests.fakes import load_fixture
from tests.fakes.twilio_server import TwilioFake

VISITOR = "+4915112345678"
STATUS_CALLBACK = CHANNEL.status_callback_url(PUBLIC, SLUG)
SID = re.compile(r"^SM[0-9a-f]{32}$")
TEMPLATE_SID = "HXb5b62575e6e4ff6129ad7c8efe1f983e"


def tenant() -> Tenant:
    return shop(SLUG, tenant_id=str(uuid.uuid4()), name="Corner Shop")


def sms_context(**overrides: Any) -> OutboundContext:
    values: dict[str, Any] = dict(
        tenant=tenant(), credentials=CREDENTIALS, to=VISITOR,
        reply_context={"to": SHOP_SMS, "from": VISITOR},
        status_callback_url=STATUS_CALLBACK,
    )
    values.update(overrides)
    return OutboundContext(**values)


def whatsapp_context(**overrides: Any) -> OutboundContext:
    return sms_context(**{
        "reply_context": {"to": f"whatsapp:{SHOP_WHATSAPP}", "from": f"whatsapp:{VISITOR}"},
        **overrides,
    })


def reply(*messages: dict[str, Any]) -> Reply:
    return Reply(question="where is my order?", messages=tuple(messages))


@pytest.fixture
def twilio() -> Iterator[TwilioFake]:
    with TwilioFake(account_sid=ACCOUNT, auth_token=TOKEN,
                    invalid_numbers=["+15005550001"]) as fake:
        yield fake


@pytest_asyncio.fixture
async def sender(twilio: TwilioFake) -> AsyncIterator[TwilioSender]:
    async with httpx.AsyncClient(timeout=1.0) as http:
        yield TwilioSender(http, api_base=twilio.base_url)


async def send(sender: TwilioSender, context: OutboundContext, *replies: Reply) -> list[str]:
    """Render, then deliver every part once, in order (what the outbox does when all goes well)."""
    return [await sender.deliver(context, part) for part in sender.render(context, replies)]


# -- render ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sms_reply_is_one_form_from_the_number_the_visitor_wrote_to(
    sender: TwilioSender,
) -> None:
    parts = sender.render(sms_context(), [reply({"text": "Order 1001 shipped with UPS."})])
    assert parts == [{
        "To": VISITOR,
        "From": SHOP_SMS,
        "Body": "Order 1001 shipped with UPS.",
        "StatusCallback": f"{PUBLIC}/channels/{SLUG}/twilio/status",
    }]


@pytest.mark.asyncio
async def test_whatsapp_reply_uses_whatsapp_addresses(sender: TwilioSender) -> None:
    context = whatsapp_context(status_callback_url=None)
    assert sender.render(context, [reply({"text": "Hi Jana!"})]) == [
        {"To": f"whatsapp:{VISITOR}", "From": f"whatsapp:{SHOP_WHATSAPP}", "Body": "Hi Jana!"}]


@pytest.mark.asyncio
async def test_buttons_become_numbered_choices_in_the_body(sender: TwilioSender) -> None:
    [part] = sender.render(sms_context(), [
        reply({"text": "I found your order."}),
        reply({"text": "What next?", "buttons": [
            {"title": "Track it", "payload": "/track"},
            {"title": "Return it", "payload": "/return"},
        ]}),
    ])
    assert part["Body"] == ("I found your order.\n\nWhat next?\n1. Track it\n2. Return it\n"
                            "Reply with a number.")


@pytest.mark.asyncio
async def test_long_sms_is_rendered_as_several_bodies_of_at_most_ten_segments(
    sender: TwilioSender,
) -> None:
    paragraph = ("Returns are free within 30 days. Pack the shoes in their box, print the label "
                 "from the link we emailed you and drop the parcel at any UPS access point.")
    text = "\n\n".join(f"{i}) {paragraph}" for i in range(1, 16))
    parts = sender.render(sms_context(), [reply({"text": text})])

    assert len(parts) >= 2
    assert all(segments(p["Body"]) <= 10 and len(p["Body"]) <= 1600 for p in parts)
    assert " ".join(p["Body"] for p in parts).split() == text.split()
    assert all(p.keys() == {"To", "From", "Body", "StatusCallback"} for p in parts)


@pytest.mark.asyncio
async def test_sms_gets_plain_punctuation_so_one_curly_quote_does_not_triple_the_bill(
    sender: TwilioSender,
) -> None:
    text = "Your order’s on its way — it’ll arrive “soon”…"
    [sms] = sender.render(sms_context(), [reply({"text": text})])
    assert sms["Body"] == "Your order's on its way - it'll arrive \"soon\"..."
    assert segments(sms["Body"]) == 1
    [whatsapp] = sender.render(whatsapp_context(), [reply({"text": text})])
    assert whatsapp["Body"] == text  # WhatsApp is not billed by segments: left as written


@pytest.mark.asyncio
async def test_long_whatsapp_reply_is_split_by_whatsapps_rules(sender: TwilioSender) -> None:
    text = "\n\n".join(["Our shoes are made in Portugal from vegetable-tanned leather."] * 60)
    parts = sender.render(whatsapp_context(), [reply({"text": text})])
    assert len(parts) == 3
    assert all(len(p["Body"]) <= 1600 for p in parts)
    assert [p["Body"] for p in parts] == split_for_whatsapp(text)  # the same as through Meta


@pytest.mark.asyncio
async def test_whatsapp_outside_the_window_renders_the_approved_template(
    sender: TwilioSender,
) -> None:
    credentials = {**CREDENTIALS, "whatsapp_template": {"content_sid": TEMPLATE_SID}}
    context = whatsapp_context(credentials=credentials, window_open=False)
    assert sender.render(context, [reply({"text": "Your refund was issued."})]) == [{
        "To": f"whatsapp:{VISITOR}", "From": f"whatsapp:{SHOP_WHATSAPP}",
        "StatusCallback": STATUS_CALLBACK, "ContentSid": TEMPLATE_SID,
    }]


@pytest.mark.asyncio
async def test_the_templates_variables_go_as_json(sender: TwilioSender) -> None:
    template = {"content_sid": TEMPLATE_SID, "content_variables": {"1": "Jana"}}
    context = whatsapp_context(credentials={**CREDENTIALS, "whatsapp_template": template},
                               window_open=False)
    [part] = sender.render(context, [reply({"text": "Hello again"})])
    assert json.loads(part["ContentVariables"]) == {"1": "Jana"}


@pytest.mark.asyncio
async def test_whatsapp_outside_the_window_without_template_is_refused_without_calling_twilio(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    with pytest.raises(PermanentSendError) as refused:
        sender.render(whatsapp_context(window_open=False), [reply({"text": "Hello again"})])
    assert refused.value.code == "63016"
    assert "24-hour" in refused.value.detail
    assert twilio.requests == []


@pytest.mark.asyncio
async def test_sms_is_not_bound_by_the_whatsapp_window(sender: TwilioSender) -> None:
    parts = sender.render(sms_context(window_open=False), [reply({"text": "Still here."})])
    assert [p["Body"] for p in parts] == ["Still here."]


@pytest.mark.asyncio
async def test_nothing_to_say_renders_nothing(twilio: TwilioFake, sender: TwilioSender) -> None:
    assert sender.render(sms_context(), [reply()]) == []
    assert sender.render(sms_context(), [reply({"custom": {"x": 1}})]) == []
    assert twilio.requests == []


@pytest.mark.asyncio
async def test_nothing_to_say_outside_the_window_sends_not_even_a_template(
    sender: TwilioSender,
) -> None:
    """As through Meta: a reply with only custom payloads is no reason to send a template."""
    credentials = {**CREDENTIALS, "whatsapp_template": {"content_sid": TEMPLATE_SID}}
    closed = whatsapp_context(credentials=credentials, window_open=False)
    assert sender.render(closed, [reply({"custom": {"x": 1}})]) == []
    no_template = whatsapp_context(window_open=False)
    assert sender.render(no_template, [reply({"custom": {"x": 1}})]) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("missing", ["account_sid", "auth_token"])
async def test_incomplete_credentials_are_refused_when_rendering(
    sender: TwilioSender, missing: str
) -> None:
    with pytest.raises(PermanentSendError) as refused:
        sender.render(sms_context(credentials={**CREDENTIALS, missing: ""}),
                      [reply({"text": "hi"})])
    assert refused.value.code == "20003"


@pytest.mark.asyncio
async def test_without_the_number_the_visitor_wrote_to_nothing_can_be_sent(
    sender: TwilioSender,
) -> None:
    with pytest.raises(PermanentSendError, match="no Twilio number"):
        sender.render(sms_context(reply_context={}), [reply({"text": "hi"})])


# -- deliver -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_part_is_created_at_twilio_and_its_sid_comes_back(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    context = sms_context()
    [part] = sender.render(context, [reply({"text": "Order 1001 shipped with UPS."})])
    sid = await sender.deliver(context, part)

    assert SID.match(sid)
    [sent] = twilio.messages_to(VISITOR)
    assert sent.sid == sid
    assert sent.form == part
    [request] = twilio.requests_to("/Messages.json", "POST")
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"


@pytest.mark.asyncio
async def test_every_rendered_part_is_accepted_by_twilio(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    sms = "\n\n".join(["Your order 1001 left our warehouse on Monday and travels with UPS."] * 40)
    whatsapp = "\n\n".join(["Our shoes are made in Portugal from vegetable-tanned leather."] * 60)
    sms_sids = await send(sender, sms_context(), reply({"text": sms}))
    whatsapp_sids = await send(sender, whatsapp_context(), reply({"text": whatsapp}))

    assert len(sms_sids) >= 2 and len(whatsapp_sids) == 3
    assert [m.sid for m in twilio.sent] == sms_sids + whatsapp_sids  # in the order delivered
    assert " ".join(m.body or "" for m in twilio.sent[:len(sms_sids)]).split() == sms.split()


@pytest.mark.asyncio
async def test_the_template_is_created_at_twilio_without_a_body(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    credentials = {**CREDENTIALS, "whatsapp_template": {"content_sid": TEMPLATE_SID}}
    sids = await send(sender, whatsapp_context(credentials=credentials, window_open=False),
                      reply({"text": "Your refund was issued."}))
    [sent] = twilio.messages_to(VISITOR)
    assert sids == [sent.sid]
    assert sent.content_sid == TEMPLATE_SID
    assert "Body" not in sent.form
    assert sent.to == f"whatsapp:{VISITOR}"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_errors_and_rate_limits_are_transient(
    twilio: TwilioFake, sender: TwilioSender, status: int
) -> None:
    twilio.fail_next(status)
    with pytest.raises(TransientSendError):
        await send(sender, sms_context(), reply({"text": "hi"}))
    assert twilio.sent == []


@pytest.mark.asyncio
async def test_a_hanging_api_is_a_transient_timeout(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    twilio.hang_next(3.0)
    with pytest.raises(TransientSendError, match="in time"):
        await send(sender, sms_context(), reply({"text": "hi"}))


@pytest.mark.asyncio
async def test_an_unreachable_api_is_transient() -> None:
    with TwilioFake() as fake:
        dead = fake.base_url  # nothing listens here once the fake has stopped
    async with httpx.AsyncClient(timeout=1.0) as http:
        with pytest.raises(TransientSendError, match="could not reach"):
            await send(TwilioSender(http, api_base=dead), sms_context(), reply({"text": "hi"}))


@pytest.mark.asyncio
async def test_an_invalid_number_is_permanent_with_twilios_code(sender: TwilioSender) -> None:
    with pytest.raises(PermanentSendError) as refused:
        await send(sender, sms_context(to="+15005550001"), reply({"text": "hi"}))
    assert refused.value.code == "21211"
    assert "Invalid 'To' Phone Number" in refused.value.detail


@pytest.mark.asyncio
async def test_wrong_credentials_are_permanent(sender: TwilioSender) -> None:
    context = sms_context(credentials={**CREDENTIALS, "auth_token": "not-the-token"})
    with pytest.raises(PermanentSendError) as refused:
        await send(sender, context, reply({"text": "hi"}))
    assert refused.value.code == "20003"


@pytest.mark.asyncio
@pytest.mark.parametrize("missing", ["account_sid", "auth_token"])
async def test_incomplete_credentials_are_permanent_without_calling_twilio(
    twilio: TwilioFake, sender: TwilioSender, missing: str
) -> None:
    context = sms_context(credentials={**CREDENTIALS, missing: ""})
    with pytest.raises(PermanentSendError) as refused:
        await send(sender, context, reply({"text": "hi"}))
    assert refused.value.code == "20003"
    assert twilio.requests == []


@pytest.mark.asyncio
async def test_an_answer_without_a_sid_is_permanent_so_it_is_never_sent_twice(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    twilio.fail_next(201)  # created, but the answer carries no sid
    with pytest.raises(PermanentSendError, match="without a message sid"):
        await send(sender, sms_context(), reply({"text": "hi"}))


@pytest.mark.asyncio
async def test_credentials_bodies_and_numbers_never_reach_the_logs(
    sender: TwilioSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_text = "My card ends in 4242"
    await send(sender, sms_context(), reply({"text": secret_text}))
    with pytest.raises(PermanentSendError):
        await send(sender, sms_context(to="+15005550001"), reply({"text": secret_text}))
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "twilio message created" in logged and "twilio refused a message" in logged
    for secret in (TOKEN, secret_text, VISITOR, "+15005550001"):
        assert secret not in logged, secret


# -- the fake itself validates like Twilio -----------------------------------------------------


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": SHOP_SMS, "Body": "hi"}, 21604),
        ({"To": VISITOR, "Body": "hi"}, 21603),
        ({"To": VISITOR, "From": SHOP_SMS}, 21602),
        ({"To": "12345", "From": SHOP_SMS, "Body": "hi"}, 21211),
        ({"To": f"whatsapp:{VISITOR}", "From": SHOP_SMS, "Body": "hi"}, 21910),
        ({"To": VISITOR, "From": SHOP_SMS, "Body": "x" * 1601}, 21617),
    ],
)
def test_fake_refuses_what_twilio_refuses(twilio: TwilioFake, form: dict[str, str],
                                          code: int) -> None:
    response = httpx.post(f"{twilio.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
                          data=form, auth=(ACCOUNT, TOKEN))
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["more_info"].endswith(str(code))
    assert twilio.sent == []


def test_fake_answers_401_in_twilios_shape(twilio: TwilioFake) -> None:
    url = f"{twilio.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    form = {"To": VISITOR, "From": SHOP_SMS, "Body": "hi"}
    for auth in [None, (ACCOUNT, "wrong"), ("AC" + "1" * 32, TOKEN)]:
        response = httpx.post(url, data=form, auth=auth)
        assert response.status_code == 401
        assert response.json() == {"code": 20003, "message": "Authenticate", "status": 401,
                                    "more_info": "https://www.twilio.com/docs/errors/20003"}


def test_fake_creates_messages_shaped_like_the_captured_one(twilio: TwilioFake) -> None:
    response = httpx.post(f"{twilio.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
                          data={"To": VISITOR, "From": SHOP_SMS, "Body": "hi"},
                          auth=(ACCOUNT, TOKEN))
    assert response.status_code == 201
    captured = load_fixture("twilio", "message_created.json")
    assert response.json().keys() == captured.keys()
    assert response.json()["status"] == captured["status"] == "queued"


# -- delivery status back into the gateway -------------------------------------------------------


@pytest.mark.asyncio
async def test_status_callbacks_of_a_sent_message_are_recorded_by_the_gateway(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    [sid] = await send(sender, sms_context(), reply({"text": "Order 1001 shipped."}))
    h = TwilioHarness()

    for status in ("sent", "delivered"):
        callback = twilio.status_callback(sid, status)
        assert callback.url == f"{PUBLIC}{h.status}"
        response = await h.post(h.status, callback.body, callback.headers)
        assert response.status == 200

    assert [(provider, channel, u.provider_message_id, u.status)
            for _, provider, channel, u in h.inbox.statuses] == [
        ("twilio", "sms", sid, "sent"), ("twilio", "sms", sid, "delivered"),
    ]


@pytest.mark.asyncio
async def test_failed_whatsapp_delivery_reports_twilios_error_code(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    [sid] = await send(sender, whatsapp_context(), reply({"text": "Hi"}))
    h = TwilioHarness()
    callback = twilio.status_callback(sid, "undelivered", error_code="63024")
    assert (await h.post(h.status, callback.body, callback.headers)).status == 200
    [(_, provider, channel, update)] = h.inbox.statuses
    assert (provider, channel, update.status, update.error_code) == (
        "twilio", "whatsapp", "undelivered", "63024")


def test_fake_posts_signed_callbacks_to_the_status_url_on_its_own() -> None:
    """auto_status: Twilio's own habit of reporting sent, then delivered, over real HTTP."""
    received: list[tuple[dict[str, str], bool]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
            url = f"http://{self.headers['Host']}{self.path}"  # the URL it called
            valid = RequestValidator(TOKEN).validate(url, form, self.headers["X-Twilio-Signature"])
            received.append((form, valid))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with TwilioFake(account_sid=ACCOUNT, auth_token=TOKEN,
                        auto_status=("sent", "delivered")) as fake:
            callback = f"http://127.0.0.1:{server.server_port}/channels/{SLUG}/twilio/status"
            response = httpx.post(
                f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
                data={"To": VISITOR, "From": SHOP_SMS, "Body": "hi", "StatusCallback": callback},
                auth=(ACCOUNT, TOKEN),
            )
            assert response.status_code == 201
            fake.wait_for_callbacks()
            sid = response.json()["sid"]
            assert [(sid_, status, code) for sid_, status, code in fake.callbacks] == [
                (sid, "sent", 200), (sid, "delivered", 200),
            ]
    finally:
        server.shutdown()
        server.server_close()
    assert [(form["MessageSid"], form["MessageStatus"], valid) for form, valid in received] == [
        (sid, "sent", True), (sid, "delivered", True),
    ]
