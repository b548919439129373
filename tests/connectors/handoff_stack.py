"""Two real gateways (connectors.app.create_app, real ports) on one database, for the handoff:
the bot's silence while a person owns a conversation, agents' replies through every channel,
satisfaction ratings.

Around them the providers' local fakes (tests/fakes: Twilio, Meta's Graph API, a scripted
Rasa), an SMTP server (aiosmtpd), a shop's REST callback server and the admin service's
/internal/live route (`Sink`, a recording server; with Redis, PostgreSQL runs read the
`sb:live:` channel instead). Visitors write through the channels' real webhooks, signed the way
each provider signs (the channel harnesses' helpers), so what is tested is what a provider
does; a conversation is handed to a person with core/handoffs.py `open_handoff`, as
action_handoff does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import websockets
from aiosmtpd.controller import Controller
from sanic import Sanic
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from twilio.request_validator import RequestValidator

from connectors.app import create_app
from core import handoffs
from core.conversations import HandoffRow
from core.live import CHANNEL_PREFIX, LiveEvent, pubsub_channel
from core.settings import Settings
from devtools.demo_shop import DEMO_TENANT_ID, DEMO_WIDGET_KEY
from tenants.api_keys import issue_key
from tenants.crypto import CredentialsBox
from tenants.models import TenantRow
from tests.conftest import services
from tests.databases import migrated_url, seeded_sessions
from tests.fakes import FakeServer, RecordedRequest, Response
from tests.fakes.graph_server import GraphFake, signed
from tests.fakes.rasa_server import RasaFake
from tests.fakes.twilio_server import TwilioFake
from tests.servers import free_port, serving

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SLUG = "demo"
SHOP_SMS = "+15550001111"
SHOP_WHATSAPP = "+15550002222"
PHONE_NUMBER_ID = "106540352242922"
APP_SECRET = "3f1c0e8a9b7d4e2f8a6c5b4d3e2f1a0b"
ACCESS_TOKEN = "EAAG-handoff-tests"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
SHOP_EMAIL = "support@shop.example"
CALLBACK_SECRET = "callback-secret-0123456789"
TEMPLATE_SID = "HXb5b62575e6e4ff6129ad7c8efe1f983e"
AGENT = {"id": "user-7", "name": "Sam"}


class Sink(FakeServer):
    """Records what is posted to it: the admin service's /internal/live, a shop's callback."""

    def authorized(self, request: RecordedRequest) -> bool:
        return True

    def route(self, request: RecordedRequest) -> Response:
        return 202, {}, {"accepted": True}


class KeepingSmtp:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(e.original_content, policy=default) for e in self.envelopes]


def credentials(smtp_port: int, callback_url: str) -> dict[str, Any]:
    return {
        "twilio": {"account_sid": "AC4f1d2e8b9c0a7f6e5d4c3b2a1908f7e6",
                   "auth_token": "twilio-test-auth-token-0123456789",
                   "sms_numbers": [SHOP_SMS], "whatsapp_numbers": [SHOP_WHATSAPP],
                   "whatsapp_template": {"content_sid": TEMPLATE_SID}},
        "meta_whatsapp": {"app_secret": APP_SECRET, "verify_token": "verify-me",
                          "access_token": ACCESS_TOKEN, "phone_number_id": PHONE_NUMBER_ID,
                          "template": {"name": "hello_world", "language": "en_US"}},
        "email": {"address": SHOP_EMAIL, "inbound": "mailgun", "mailgun_signing_key": MAILGUN_KEY,
                  "smtp": {"host": "127.0.0.1", "port": smtp_port, "starttls": False}},
        "rest": {"callback_url": callback_url, "signing_secret": CALLBACK_SECRET},
    }


@dataclass
class Gateway:
    app: Sanic
    server: AsyncExitStack  # stops the server (tests/servers.py serving)
    url: str
    settings: Settings


@dataclass
class Stack:
    gateways: list[Gateway]
    sessions: async_sessionmaker
    rasa: RasaFake
    twilio: TwilioFake
    graph: GraphFake
    smtp: KeepingSmtp
    admin: Sink
    callback: Sink
    rest_key: str
    token: str
    redis: Any = None
    live_seen: list[LiveEvent] = field(default_factory=list)  # from Redis, when it is used
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def a(self) -> str:
        return self.gateways[0].url

    @property
    def b(self) -> str:
        return self.gateways[1].url

    # -- visitors, through the real webhooks ------------------------------------------------
    async def sms(self, text: str, visitor: str = "+14155550123", gateway: int = 0) -> None:
        await self._twilio(gateway, "sms_inbound.txt", Body=text, From=visitor, To=SHOP_SMS)

    async def twilio_whatsapp(self, text: str, visitor: str = "+4915112345678",
                              gateway: int = 0) -> None:
        await self._twilio(gateway, "whatsapp_inbound.txt", Body=text,
                           From=f"whatsapp:{visitor}", To=f"whatsapp:{SHOP_WHATSAPP}",
                           WaId=visitor.lstrip("+"))

    async def _twilio(self, gateway: int, fixture: str, **replace: str) -> None:
        sid = "SM" + uuid.uuid4().hex
        replace.update(MessageSid=sid, SmsMessageSid=sid, SmsSid=sid)
        pairs = parse_qsl((FIXTURES / "twilio" / fixture).read_text(), keep_blank_values=True)
        form = [(key, replace.get(key, value)) for key, value in pairs]
        url = f"{self.gateways[gateway].url}/channels/{SLUG}/twilio/messages"
        signature = RequestValidator(self.twilio.auth_token).compute_signature(url, dict(form))
        async with httpx.AsyncClient() as client:
            answer = await client.post(url, content=urlencode(form), headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature})
        assert answer.status_code == 200, answer.text

    async def meta_whatsapp(self, text: str, wa_id: str = "16505551234",
                            gateway: int = 0) -> None:
        payload = json.loads((FIXTURES / "meta" / "text_message.json").read_text())
        value = payload["entry"][0]["changes"][0]["value"]
        value["contacts"][0]["wa_id"] = wa_id
        message = value["messages"][0]
        message.update({"from": wa_id, "id": f"wamid.{uuid.uuid4().hex}",
                        "timestamp": str(int(time.time())), "text": {"body": text}})
        await self.post(gateway, f"/channels/{SLUG}/whatsapp/webhook",
                        *signed(APP_SECRET, payload))

    async def email(self, text: str, message_id: str, references: str = "",
                    sender: str = "alex.miller@gmail.com", gateway: int = 0) -> None:
        timestamp, token = str(int(time.time())), uuid.uuid4().hex
        form = {"timestamp": timestamp, "token": token,
                "signature": hmac.new(MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(),
                                      hashlib.sha256).hexdigest(),
                "recipient": SHOP_EMAIL, "sender": sender, "from": f"Alex <{sender}>",
                "To": SHOP_EMAIL, "subject": "Where is my order?", "body-plain": text,
                "stripped-text": text, "Message-Id": message_id,
                "message-headers": json.dumps(
                    [["Message-Id", message_id], ["References", references],
                     ["Authentication-Results", "mx.shop.example; dmarc=pass"]])}
        request = httpx.Request("POST", "http://gateway.test", data=form)
        await self.post(gateway, f"/channels/{SLUG}/email/mailgun", request.read(),
                        {"Content-Type": request.headers["Content-Type"]})

    async def rest(self, text: str, sender: str = "visitor-1", gateway: int = 0) -> Any:
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{self.gateways[gateway].url}/channels/{SLUG}/rest/webhook",
                json={"sender": sender, "message": text},
                headers={"Authorization": f"Bearer {self.rest_key}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def post(self, gateway: int, path: str, body: bytes, headers: dict[str, str]) -> None:
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{self.gateways[gateway].url}{path}", content=body,
                                       headers=headers)
        assert answer.status_code == 200, answer.text

    def widget_url(self, gateway: int = 0) -> str:
        base = self.gateways[gateway].url.replace("http://", "ws://")
        return f"{base}/channels/{SLUG}/web/socket?key={DEMO_WIDGET_KEY}"

    # -- the shop's side ----------------------------------------------------------------------
    def sender(self, channel: str, user_key: str) -> str:
        return f"{DEMO_TENANT_ID}:{channel}:{user_key}"

    async def hand_to_person(self, channel: str, user_key: str) -> HandoffRow:
        """What action_handoff does: the conversation is queued for a person."""
        row, _ = await handoffs.open_handoff(
            self.sessions, tenant_id=DEMO_TENANT_ID, sender_id=self.sender(channel, user_key),
            channel=channel, reason="visitor_asked", last_message=None)
        return row

    async def reply(self, channel: str, user_key: str, text: str,
                    author: dict[str, str] | None = AGENT, message_pk: int | None = None,
                    buttons: list[dict[str, str]] | None = None, gateway: int = 0,
                    token: str | None = None) -> httpx.Response:
        """The admin service's call: POST /internal/agent-replies."""
        body = {"tenant_id": DEMO_TENANT_ID, "sender_id": self.sender(channel, user_key),
                "message_pk": message_pk, "author": author,
                "messages": [{"text": text, "buttons": buttons or []}]}
        async with httpx.AsyncClient() as client:
            return await client.post(
                f"{self.gateways[gateway].url}/internal/agent-replies", json=body,
                headers={"Authorization": f"Bearer {token or self.token}"})

    async def settle(self, timeout: float = 10.0) -> None:
        """Until every gateway's turns, retries and agents' replies in flight are done."""
        async with asyncio.timeout(timeout):
            while any(g.app.ctx.inbox.busy or g.app.ctx.agent_replies.busy
                      for g in self.gateways):
                await asyncio.sleep(0.01)

    async def until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.01)

    def live(self, kind: str | None = None) -> list[LiveEvent]:
        """The live events the gateways published for agents' pages."""
        events = list(self.live_seen) if self.redis is not None else [
            LiveEvent.loads(r.body) for r in self.admin.requests_to("/internal/live")]
        return [e for e in events if kind is None or e.kind == kind]


async def _start(settings: Settings) -> Gateway:
    app = create_app(settings, name=f"gw{uuid.uuid4().hex[:8]}")
    server = AsyncExitStack()
    url = await server.enter_async_context(serving(app))
    return Gateway(app, server, url, settings)


async def _stop(gateway: Gateway) -> None:
    await gateway.server.aclose()


async def _read_live(redis: Any, seen: list[LiveEvent], ready: asyncio.Event) -> None:
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(pubsub_channel(redis, CHANNEL_PREFIX) + DEMO_TENANT_ID)
        ready.set()
        async for message in pubsub.listen():
            if message.get("type") == "message":
                seen.append(LiveEvent.loads(message["data"]))
    finally:
        await pubsub.aclose()


async def open_stack(kind: str, tmp_path: Path, extra_env: dict[str, str] | None = None,
                     callback_host: str = "127.0.0.1") -> AsyncIterator[Stack]:
    """`callback_host`: the name the shop's callback URL gives its server (it listens on
    127.0.0.1; tests/connectors/test_private_destinations.py names it `localhost`)."""
    url = migrated_url(kind, tmp_path)
    redis_url = services()["redis_url"] if kind == "postgresql" else None
    handler = KeepingSmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    with RasaFake() as rasa, TwilioFake() as twilio, GraphFake(ACCESS_TOKEN) as graph, \
            Sink() as admin, Sink() as callback:
        key = os.environ["SWITCHBOARD_CREDENTIALS_KEY"]
        async with seeded_sessions(url) as (_, sessions):
            async with sessions() as session:
                await session.execute(update(TenantRow).where(TenantRow.id == DEMO_TENANT_ID)
                                      .values(credentials_encrypted=CredentialsBox(key).seal(
                                          credentials(controller.port, callback.base_url.replace(
                                              "127.0.0.1", callback_host) + "/replies"))))
                await session.commit()
            rest_key = (await issue_key(sessions, DEMO_TENANT_ID, "tests")).secret
            env = {"DATABASE_URL": url, "SWITCHBOARD_CREDENTIALS_KEY": key,
                   "RASA_TOKEN": "t", "RASA_URL": rasa.base_url,
                   "ACTION_SERVER_URL": rasa.base_url, "RASA_TIMEOUT": "3",
                   "SWITCHBOARD_VAR_DIR": str(tmp_path), "TWILIO_API_URL": twilio.base_url,
                   "GRAPH_API_URL": graph.base_url, "ADMIN_URL": admin.base_url,
                   "SEND_ATTEMPTS": "2",
                   # The shop's callback server and SMTP server are on loopback.
                   "ALLOW_PRIVATE_DESTINATIONS": "true"}
            if redis_url:
                env["REDIS_URL"] = redis_url
            env.update(extra_env or {})  # billing on: tests/connectors/test_conversation_limit.py
            settings = Settings.from_env(env)
            gateways = [await _start(settings), await _start(settings)]
            redis, reader, seen = None, None, list[LiveEvent]()
            if redis_url:
                import redis.asyncio as aioredis
                redis = aioredis.from_url(redis_url)
                ready = asyncio.Event()
                reader = asyncio.create_task(_read_live(redis, seen, ready))
                await ready.wait()
                for gateway in gateways:  # widget pushes: every gateway listens before a test
                    await asyncio.wait_for(gateway.app.ctx.web_push.ready.wait(), 5)
            for gateway in gateways:  # a quick retry of a failed callback
                gateway.app.ctx.agent_replies._callbacks._retry_wait = 0.01
            stack = Stack(gateways=gateways, sessions=sessions, rasa=rasa, twilio=twilio,
                          graph=graph, smtp=handler, admin=admin, callback=callback,
                          rest_key=rest_key, token=settings.internal_token.reveal(),
                          redis=redis, live_seen=seen)
            try:
                yield stack
            finally:
                for gateway in gateways:
                    await _stop(gateway)
                if reader is not None:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
                if redis is not None:
                    await redis.aclose()
    controller.stop()


async def socket_session(url: str, token: str | None = None) -> tuple[Any, dict[str, Any]]:
    ws = await websockets.connect(url)
    await ws.send(json.dumps({"type": "hello", "token": token}))
    session = json.loads(await ws.recv())
    assert session["type"] == "session", session
    return ws, session


async def frames_until_done(ws: Any) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        frames.append(frame)
        if frame["type"] == "done":
            return frames
