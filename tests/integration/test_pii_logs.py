"""No visitor data in any process's log: a full conversation on every channel (REST, widget,
SMS, WhatsApp through Twilio and through Meta, email), then every log line of the bot, the
action server and the gateway is searched for the demo customers' emails, the visitors'
numbers and addresses and the texts they sent (DESIGN.md, style 14; issue 12, point 6).

The logs searched are the whole session's, so every other test's conversations on this stack
count too. Secrets of the stack (the Rasa token, the key Rasa's JWTs are signed with, the
credentials key) must not be in them either.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx
import pytest
import websockets

from core.settings import Settings
from devtools import simulate
from devtools.demo_shop import DEMO_WIDGET_KEY
from tests.fakes.graph_server import GraphFake
from tests.fakes.twilio_server import TwilioFake
from tests.integration.conftest import Visitor
from tests.integration.mailbox import Mailbox
from tests.integration.stack import Stack
from tests.integration.test_channels import Texter, eventually, new_number

pytestmark = pytest.mark.integration

DEMO_EMAILS = ("alex@example.com", "sam@example.com", "kim@example.com")
LOGS = ("bot", "actions", "gateway", "gateway2")


def marker() -> str:
    """A word no log would hold unless a visitor's text reached it."""
    return "zq" + secrets.token_hex(5)


async def widget_conversation(stack: Stack, texts: list[str]) -> list[str]:
    url = stack.gateway.replace("http", "ws") + f"/channels/demo/web/socket?key={DEMO_WIDGET_KEY}"
    answers = []
    async with websockets.connect(url, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "hello", "token": None}))
        assert json.loads(await ws.recv())["type"] == "session"
        for text in texts:
            await ws.send(json.dumps({"type": "message", "text": text,
                                      "id": secrets.token_hex(6)}))
            said = []
            while True:
                frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame["type"] == "done":
                    break
                assert frame["type"] != "error", frame
                said.append(str(frame.get("text") or ""))
            answers.append("\n".join(said))
    return answers


def test_logs_hold_no_emails_numbers_or_texts(stack: Stack, twilio_api: TwilioFake,
                                              graph_api: GraphFake, mailbox: Mailbox) -> None:
    sent: list[str] = []  # every text a visitor sent
    numbers: list[str] = []

    def say(texts: list[str]) -> list[str]:
        sent.extend(texts)
        return texts

    # Web widget.
    asyncio.run(widget_conversation(stack, say([
        f"where is order #1004? my email is kim@example.com {marker()}",
        f"do you ship to Canada {marker()}?"])))

    # SMS and WhatsApp through Twilio.
    for whatsapp in (False, True):
        texter = Texter(stack, twilio_api, whatsapp=whatsapp)
        numbers.append(texter.number)
        # A wrong email first (a failed verification is logged), then a person (a handoff
        # is logged): both name the conversation, whose sender id holds the number.
        for text in say([f"where is my order? {marker()}", "1001", "kim@example.com",
                         "alex@example.com", f"let me talk to a person {marker()}"]):
            texter.say(text)

    # WhatsApp through Meta's Cloud API.
    creds = stack.demo_credentials()
    number = new_number()
    numbers.append(number)
    for text in say([f"where is order 1002 {marker()}? my email is sam@example.com"]):
        request = simulate.meta_message(stack.gateway, "demo", creds["meta_whatsapp"], number, text)
        assert httpx.post(request.url, content=request.body,
                          headers=request.headers).status_code == 200
        eventually(lambda: [s for s in graph_api.sent if s.body["to"] == number.lstrip("+")],
                   timeout=60, what="WhatsApp reply")

    # Email.
    address = f"robin-{secrets.token_hex(4)}@example.net"
    subject = f"My parcel {marker()}"
    mail = simulate.mailgun_message(
        stack.gateway, "demo", creds["email"], address, subject,
        say([f"Hi, where is order #1001? My email is alex@example.com. {marker()}\n\nRobin"])[0])
    assert httpx.post(mail.url, content=mail.body, headers=mail.headers).status_code == 200
    mailbox.wait_for(lambda m: address in str(m["To"]))

    # REST: a status check with a demo customer's email.
    rest = Visitor(stack)
    for text in say([f"where is my order? {marker()}", "1002", "sam@example.com",
                     f"I would like to speak to a person about {marker()}"]):
        rest.say(text)

    time.sleep(1.0)  # the processes write their last lines
    logs = {name: (stack.var_dir / f"{name}.log").read_text(errors="replace")
            for name in LOGS if (stack.var_dir / f"{name}.log").exists()}
    assert {"bot", "actions", "gateway"} <= set(logs)
    settings = Settings.from_env(stack.env())
    forbidden = {
        **{email: "a demo customer's email" for email in (*DEMO_EMAILS, address)},
        **{n.lstrip("+")[-10:]: "a visitor's phone number" for n in numbers},
        **{word: "a visitor's text" for text in sent for word in text.split()
           if word.startswith("zq")},
        **{text: "a visitor's text" for text in sent if len(text) > 12},
        subject: "an email's subject",
        settings.rasa_token.reveal(): "the Rasa token",
        settings.rasa_jwt_key.reveal(): "the key of Rasa's JWTs",
        settings.credentials_key.reveal(): "the credentials key",
    }
    found = [f"{name}.log holds {what}: {needle!r} in {line.strip()[:300]!r}"
             for name, text in logs.items() for line in text.splitlines()
             for needle, what in forbidden.items() if needle in line]
    assert not found, "\n".join(found[:20])
