"""The Twilio sender against a local HTTP fake of the Messages API (tests/fakes/twilio_server.py)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from connectors.outbound import Answer, OutboundContext, PermanentSendError, TransientSendError
from connectors.sms_segments import segments
from connectors.twilio_sender import TwilioSender
from tenants import Tenant
from tests.connectors.test_twilio import PUBLIC, STATUS, make_app, post
from tests.fakes.twilio_server import TwilioFake

ACCOUNT = "AC4f1d2e8b9c0a7f6e5d4c3b2a1908f7e6"
TOKEN = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
SHOP_SMS = "+15550001111"
SHOP_WHATSAPP = "+15550002222"
VISITOR = "+4915112345678"
CREDENTIALS: dict[str, Any] = {
    "account_sid": ACCOUNT,
    "auth_token": TOKEN,
    "sms_numbers": [SHOP_SMS],
    "whatsapp_numbers": [SHOP_WHATSAPP],
}
SID = re.compile(r"^SM[0-9a-f]{32}$")


def tenant() -> Tenant:
    return Tenant(id=str(uuid.uuid4()), slug="corner-shop", name="Corner Shop", greeting=None,
                  return_window_days=30, order_backend="demo", credentials_encrypted=None)


def sms_context(**overrides: Any) -> OutboundContext:
    values: dict[str, Any] = dict(
        tenant=tenant(), credentials=CREDENTIALS, to=VISITOR,
        reply_context={"to": SHOP_SMS, "from": VISITOR},
        status_callback_url=f"{PUBLIC}{STATUS}",
    )
    values.update(overrides)
    return OutboundContext(**values)


def whatsapp_context(**overrides: Any) -> OutboundContext:
    return sms_context(**{
        "reply_context": {"to": f"whatsapp:{SHOP_WHATSAPP}", "from": f"whatsapp:{VISITOR}"},
        **overrides,
    })


def answer(*messages: dict[str, Any]) -> Answer:
    return Answer(question="where is my order?", messages=tuple(messages))


@pytest.fixture
def twilio() -> Iterator[TwilioFake]:
    with TwilioFake(account_sid=ACCOUNT, auth_token=TOKEN,
                    invalid_numbers=["+15005550001"]) as fake:
        yield fake  # type: ignore[misc]


@pytest_asyncio.fixture
async def sender(twilio: TwilioFake) -> AsyncIterator[TwilioSender]:
    async with httpx.AsyncClient(timeout=1.0) as http:
        yield TwilioSender(http, api_base=twilio.base_url)


@pytest.mark.asyncio
async def test_sms_reply_is_created_from_the_number_the_visitor_wrote_to(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    sids = await sender.send(sms_context(), [answer({"text": "Order 1001 shipped with UPS."})])

    assert len(sids) == 1 and SID.match(sids[0])
    [sent] = twilio.messages_to(VISITOR)
    assert sent.sid == sids[0]
    assert sent.form == {
        "To": VISITOR,
        "From": SHOP_SMS,
        "Body": "Order 1001 shipped with UPS.",
        "StatusCallback": f"{PUBLIC}{STATUS}",
    }
    [request] = twilio.requests_to("/Messages.json", "POST")
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"


@pytest.mark.asyncio
async def test_whatsapp_reply_uses_whatsapp_addresses(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    await sender.send(whatsapp_context(status_callback_url=None), [answer({"text": "Hi Jana!"})])
    [sent] = twilio.messages_to(VISITOR)
    assert sent.form == {"To": f"whatsapp:{VISITOR}", "From": f"whatsapp:{SHOP_WHATSAPP}",
                         "Body": "Hi Jana!"}


@pytest.mark.asyncio
async def test_buttons_become_numbered_choices_in_the_body(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    await sender.send(sms_context(), [
        answer({"text": "I found your order."}),
        answer({"text": "What next?", "buttons": [
            {"title": "Track it", "payload": "/track"},
            {"title": "Return it", "payload": "/return"},
        ]}),
    ])
    [sent] = twilio.messages_to(VISITOR)
    assert sent.body == ("I found your order.\n\nWhat next?\n1. Track it\n2. Return it\n"
                         "Reply with a number.")


@pytest.mark.asyncio
async def test_long_sms_goes_out_as_several_messages_in_order(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    paragraph = ("Returns are free within 30 days. Pack the shoes in their box, print the label "
                 "from the link we emailed you and drop the parcel at any UPS access point.")
    text = "\n\n".join(f"{i}) {paragraph}" for i in range(1, 16))
    sids = await sender.send(sms_context(), [answer({"text": text})])

    sent = twilio.messages_to(VISITOR)
    assert len(sent) == len(sids) >= 2
    assert [m.sid for m in sent] == sids
    assert all(segments(m.body or "") <= 10 and len(m.body or "") <= 1600 for m in sent)
    assert " ".join(m.body or "" for m in sent).split() == text.split()


@pytest.mark.asyncio
async def test_long_whatsapp_reply_is_split_at_1600_characters(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    text = "\n\n".join(["Our shoes are made in Portugal from vegetable-tanned leather."] * 60)
    await sender.send(whatsapp_context(), [answer({"text": text})])
    sent = twilio.messages_to(f"whatsapp:{VISITOR}")
    assert len(sent) == 3
    assert all(len(m.body or "") <= 1600 for m in sent)


@pytest.mark.asyncio
async def test_whatsapp_outside_the_window_sends_the_approved_template(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    credentials = {**CREDENTIALS,
                   "whatsapp_template": {"content_sid": "HXb5b62575e6e4ff6129ad7c8efe1f983e"}}
    sids = await sender.send(whatsapp_context(credentials=credentials, window_open=False),
                             [answer({"text": "Your refund was issued."})])
    [sent] = twilio.messages_to(VISITOR)
    assert sids == [sent.sid]
    assert sent.content_sid == "HXb5b62575e6e4ff6129ad7c8efe1f983e"
    assert "Body" not in sent.form
    assert sent.to == f"whatsapp:{VISITOR}"


@pytest.mark.asyncio
async def test_whatsapp_outside_the_window_without_template_is_refused_without_calling_twilio(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    with pytest.raises(PermanentSendError) as refused:
        await sender.send(whatsapp_context(window_open=False), [answer({"text": "Hello again"})])
    assert refused.value.code == "63016"
    assert "24-hour" in refused.value.detail
    assert twilio.requests == []


@pytest.mark.asyncio
async def test_sms_is_not_bound_by_the_whatsapp_window(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    await sender.send(sms_context(window_open=False), [answer({"text": "Still here."})])
    assert len(twilio.messages_to(VISITOR)) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_errors_and_rate_limits_are_transient(
    twilio: TwilioFake, sender: TwilioSender, status: int
) -> None:
    twilio.fail_next(status)
    with pytest.raises(TransientSendError):
        await sender.send(sms_context(), [answer({"text": "hi"})])
    assert twilio.sent == []


@pytest.mark.asyncio
async def test_a_hanging_api_is_a_transient_timeout(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    twilio.hang_next(3.0)
    with pytest.raises(TransientSendError, match="in time"):
        await sender.send(sms_context(), [answer({"text": "hi"})])


@pytest.mark.asyncio
async def test_an_unreachable_api_is_transient() -> None:
    with TwilioFake() as fake:
        dead = fake.base_url  # nothing listens here once the fake has stopped
    async with httpx.AsyncClient(timeout=1.0) as http:
        with pytest.raises(TransientSendError, match="could not reach"):
            await TwilioSender(http, api_base=dead).send(sms_context(), [answer({"text": "hi"})])


@pytest.mark.asyncio
async def test_an_invalid_number_is_permanent_with_twilios_code(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    with pytest.raises(PermanentSendError) as refused:
        await sender.send(sms_context(to="+15005550001"), [answer({"text": "hi"})])
    assert refused.value.code == "21211"
    assert "Invalid 'To' Phone Number" in refused.value.detail


@pytest.mark.asyncio
async def test_wrong_credentials_are_permanent(twilio: TwilioFake, sender: TwilioSender) -> None:
    context = sms_context(credentials={**CREDENTIALS, "auth_token": "not-the-token"})
    with pytest.raises(PermanentSendError) as refused:
        await sender.send(context, [answer({"text": "hi"})])
    assert refused.value.code == "20003"


@pytest.mark.asyncio
async def test_nothing_to_say_sends_nothing(twilio: TwilioFake, sender: TwilioSender) -> None:
    assert await sender.send(sms_context(), [answer()]) == []
    assert twilio.requests == []


@pytest.mark.asyncio
async def test_credentials_and_bodies_never_reach_the_logs(
    twilio: TwilioFake, sender: TwilioSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_text = "My card ends in 4242"
    await sender.send(sms_context(), [answer({"text": secret_text})])
    with pytest.raises(PermanentSendError):
        await sender.send(sms_context(to="+15005550001"), [answer({"text": secret_text})])
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "twilio message created" in logged
    assert TOKEN not in logged and secret_text not in logged


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


# -- delivery status back into the gateway -------------------------------------------------------


@pytest.mark.asyncio
async def test_status_callbacks_of_a_sent_message_are_recorded_by_the_gateway(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    [sid] = await sender.send(sms_context(), [answer({"text": "Order 1001 shipped."})])
    app = make_app(credentials=CREDENTIALS)

    for status in ("sent", "delivered"):
        callback = twilio.status_callback(sid, status)
        assert callback.url == f"{PUBLIC}{STATUS}"
        response = await post(app, STATUS, callback.body, callback.headers)
        assert response.status == 200

    assert [(channel, u.provider_message_id, u.status)
            for _, channel, u in app.ctx.deliveries.recorded] == [
        ("sms", sid, "sent"), ("sms", sid, "delivered"),
    ]


@pytest.mark.asyncio
async def test_failed_whatsapp_delivery_reports_twilios_error_code(
    twilio: TwilioFake, sender: TwilioSender
) -> None:
    [sid] = await sender.send(whatsapp_context(), [answer({"text": "Hi"})])
    app = make_app(credentials=CREDENTIALS)
    callback = twilio.status_callback(sid, "undelivered", error_code="63024")
    assert (await post(app, STATUS, callback.body, callback.headers)).status == 200
    [(_, channel, update)] = app.ctx.deliveries.recorded
    assert (channel, update.status, update.error_code) == ("whatsapp", "undelivered", "63024")


def test_fake_posts_signed_callbacks_to_the_status_url_on_its_own() -> None:
    """auto_status: Twilio's own habit of reporting sent, then delivered, over real HTTP."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading
    from urllib.parse import parse_qsl

    from twilio.request_validator import RequestValidator

    received: list[tuple[dict[str, str], bool]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
            url = f"http://127.0.0.1:{self.server.server_port}{self.path}"  # type: ignore[attr-defined]
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
            callback = f"http://127.0.0.1:{server.server_port}/channels/corner-shop/twilio/status"
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
    assert [(form["MessageSid"], form["MessageStatus"], valid) for form, valid in received] == [
        (sid, "sent", True), (sid, "delivered", True),
    ]
