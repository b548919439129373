"""Rasa's NLG endpoint: every response the bot says, in the shop's words, rendered as Rasa would.

Rasa 3.6 posts `{"response", "arguments", "tracker": {...}, "channel": {"name"}}` for each
`utter_*` it says (rasa/core/nlg/callback.py) and expects the message back: `{"text",
"buttons", "image", "elements", "attachment", "custom"}`. Our client (bot/nlg.py) posts a slim
body instead of the whole tracker (`sender_id` and `slots` at the top level); both are read.

The shop is the sender id's first part ("{tenant_id}:{channel}:{user}", built by the gateway
from what it verified), else the `tenant_id` slot; the channel that chooses a variant is the
sender id's second part (web, sms, whatsapp, email, rest), since every turn reaches Rasa over
its REST channel. An unknown response is a 404 (bot/nlg.py then says the domain's own, which
has none either: Rasa logs it as it would without us).

Who may ask: only a caller with `Authorization: Bearer <nlg_token>` (derived from RASA_TOKEN,
so Rasa's client has it: core/settings.py, bot/nlg.py), wherever it calls from (compose puts
Rasa in another container). Loopback callers once needed no token; but then anything on the
host read any shop's texts by its id, and so did the whole internet when a reverse proxy on
the same host fronts :8080 (every request then comes from 127.0.0.1). A plain Rasa `callback`
NLG has to send the header too (`headers:` in its endpoints.yml entry). What is served is
what a shop's bot says anyway, yet every response of every shop, on every channel, was one
request away for whoever knew (or guessed from a widget) a shop's id.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sanic import Request, Sanic
from sanic.response import HTTPResponse, empty, json

from admin_api.errors import BadRequest, NotFound, Unauthorized, Unprocessable
from core.sender_ids import NotTenantScoped, SenderId
from tenants.texts import OverrideCache, UnknownResponse, domain_texts, render

log = logging.getLogger(__name__)
PATH = "/nlg"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # Rasa's body has more than we read


class ChannelIn(_Lenient):
    name: str | None = None


class TrackerIn(_Lenient):
    sender_id: str | None = None
    slots: dict[str, Any] = {}


class NlgRequest(_Lenient):
    response: str
    arguments: dict[str, Any] = {}
    channel: ChannelIn = ChannelIn()
    sender_id: str | None = None  # bot/nlg.py's slim body
    slots: dict[str, Any] | None = None
    tracker: TrackerIn | None = None  # Rasa's own callback body

    def conversation(self) -> tuple[str | None, str | None, dict[str, Any]]:
        """(shop, channel, slots) of the conversation the response is for."""
        slots = self.slots if self.slots is not None else (
            self.tracker.slots if self.tracker is not None else {})
        sender = self.sender_id or (self.tracker.sender_id if self.tracker else None) or ""
        try:
            parsed = SenderId.parse(sender)
            return parsed.tenant_id, parsed.channel, slots
        except NotTenantScoped:
            shop = slots.get("tenant_id")
            return (shop if isinstance(shop, str) and shop else None), self.channel.name, slots


def texts_cache(ctx: Any) -> OverrideCache:
    """The process's cache of shops' overrides (made at first use, on the app's sessions)."""
    cache: OverrideCache | None = getattr(ctx, "texts", None)
    if cache is None:
        cache = ctx.texts = OverrideCache(ctx.sessions)
    return cache


def install(app: Sanic) -> None:
    """Serve the NLG endpoint on `app` at /nlg (not part of the admin API's document)."""
    token = app.ctx.settings.nlg_token.reveal().encode()

    def admit(request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not header:
            raise Unauthorized("the NLG endpoint needs its token (Authorization: Bearer ...)")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
            raise Unauthorized("wrong NLG token")

    @app.post(PATH, name="nlg")
    async def nlg(request: Request) -> HTTPResponse:
        admit(request)
        try:
            asked = NlgRequest.model_validate_json(request.body or b"")
        except ValidationError as exc:
            if not request.body:
                raise BadRequest("send Rasa's NLG request as JSON") from None
            raise Unprocessable([{"loc": list(e["loc"]), "msg": e["msg"]}
                                 for e in exc.errors(include_url=False, include_input=False)]
                                ) from None
        shop, channel, slots = asked.conversation()
        domain = domain_texts()
        try:
            if shop is None:
                variants = domain.defaults(asked.response)
            else:
                variants = await texts_cache(request.app.ctx).variants(shop, asked.response,
                                                                        domain)
        except UnknownResponse:
            raise NotFound(f"no response named {asked.response!r}") from None
        message = render(variants, channel, slots, asked.arguments)
        if message is None:
            return empty()  # no variant fits: Rasa says nothing, as its own generator would
        return json(message)
