"""The inbound contract: what a channel is, and the one object it gets from the gateway.

A channel (one provider: `rest`, `web`, `twilio`, `meta`, `email`) is one folder under
connectors/channels/ and one `Channel` entry in the registry (connectors/channels/__init__.py).
Like Rasa's `InputChannel`, it only translates: its routes verify a request (the provider's
signature, the shop's receiving address), parse it into `InboundMessage`s or `StatusUpdate`s
and hand them to the inbox through the `ChannelContext`; its sender (connectors/outbound.py)
turns the bot's replies into provider messages. Nothing else of the gateway is theirs to use.

The same condition gets the same answer on every channel (JSON `{"detail"}`; the widget's
socket closes with the 44xx code of the same number):
- unknown shop                              404  (`ChannelContext.tenant`)
- missing, unknown or revoked API key (REST) 401  (`ChannelContext.api_client`)
- channel not set up for the shop, or its   404  (`ChannelContext.credentials`: the section is
  credentials incomplete                          missing or fails the channel's own check)
- missing or bad signature / token          403
- sent to an address that is not the shop's 403  (receiving number, WhatsApp phone number id,
                                                  inbound email address, widget key)
- malformed request                         400  (Mailgun: 406, its "do not retry"); also
  an id longer than its column                    (connectors/bounds.py)
- a body over the route's limit             413  (connectors/bounds.py, before it is read)
A provider message is acknowledged once it is stored; a repeat of it is acknowledged the same way
and dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from sanic import Blueprint, Request

from connectors.errors import ChannelNotConfigured, TenantNotFound, Unauthorized
from connectors.messages import InboundMessage, StatusUpdate
from connectors.outbound import Sender
from connectors.replay import ReplayGuard
from core.conversations import StoredMessage
from core.destinations import Destinations
from core.settings import Settings
from tenants import Tenant, UnknownTenant
from tenants.api_keys import ApiKey, InvalidApiKey

# Checks one channel's credentials section; returns what is wrong ([] when usable), each
# problem naming the field ("twilio.auth_token is missing").
CredentialsCheck = Callable[[Mapping[str, Any]], list[str]]
# Checks the hosts a channel's credentials make the gateway connect to on the shop's behalf
# (REST's reply callback, email's SMTP server) against the deployment's policy
# (core/destinations.py): what the owner is told when saving them; the gateway checks again
# when it connects.
DestinationsCheck = Callable[[Mapping[str, Any], Destinations], list[str]]
SenderFactory = Callable[[httpx.AsyncClient, Settings], Sender[Any]]
# A conversation's stored messages, oldest first: (tenant_id, sender_id, limit).
History = Callable[[str, str, int], Awaitable[list[StoredMessage]]]


@dataclass(frozen=True)
class Channel:
    """A registry entry: everything the gateway, the tenants CLI and the admin API need to
    know about one channel. Its `name` is the provider's one name: in InboundMessage.provider,
    the outbox's senders, the deliveries table and, unless set apart below, the URL and the
    credentials section."""

    name: str
    label: str  # for people: "Twilio", "WhatsApp Cloud API"
    routes: Callable[[Channel], Blueprint]  # its routes, relative to `url_prefix`
    sender: SenderFactory | None = None  # None: answered within the request (rest, web)
    check_credentials: CredentialsCheck | None = None  # None: needs no credentials
    # Credentials a channel works without but a shop may set (REST's reply callback):
    # checked only when the shop's section is there.
    optional_credentials: CredentialsCheck | None = None
    check_destinations: DestinationsCheck | None = None  # None: connects to no shop's host
    # Names the world already knows the channel by: shops configured these URLs at the
    # provider and stored these credentials sections before the registry existed.
    url_segment: str | None = None
    credentials_section: str | None = None
    status_path: str | None = None  # where the provider reports deliveries, under url_prefix

    @property
    def segment(self) -> str:
        """Its part of the URL: /channels/<shop>/<segment>/..."""
        return self.url_segment or self.name

    @property
    def url_prefix(self) -> str:
        return f"/channels/<tenant_slug:str>/{self.segment}"

    @property
    def section(self) -> str:
        """The key of its credentials in the shop's sealed credentials."""
        return self.credentials_section or self.name

    def status_callback_url(self, base: str, tenant_slug: str) -> str | None:
        if self.status_path is None:
            return None
        return f"{base}/channels/{tenant_slug}/{self.segment}/{self.status_path}"

    def blueprint(self) -> Blueprint:
        """A fresh blueprint of its routes (Sanic binds a blueprint to one app)."""
        return self.routes(self)

    def problems(self, credentials: Mapping[str, Any],
                 destinations: Destinations | None = None) -> list[str]:
        """What is wrong with a shop's credentials for this channel ([] when usable); with
        `destinations` (a shop saving them), also the hosts that policy refuses."""
        section = credentials.get(self.section)
        if self.check_credentials is None:
            if self.optional_credentials is None or section is None:
                return []
            if not isinstance(section, Mapping):
                return [f"{self.section} must be an object"]
            problems = self.optional_credentials(section)
        elif not isinstance(section, Mapping) or not section:
            return [f"{self.section} is missing"]
        else:
            problems = self.check_credentials(section)
        if problems or destinations is None or self.check_destinations is None:
            return problems
        return self.check_destinations(section, destinations)

    def section_of(self, credentials: Mapping[str, Any]) -> Mapping[str, Any]:
        """This channel's section of a shop's credentials; 404 unless it passes the channel's
        check (a shop whose secret is missing is never accepted "because nothing was
        configured")."""
        if self.problems(credentials):
            raise ChannelNotConfigured(f"The {self.label} channel is not set up for this shop.")
        section = credentials.get(self.section)
        return section if isinstance(section, Mapping) else {}


class ChannelInbox(Protocol):
    """Where channels hand what they parsed (connectors/inbox.py; tests use a fake)."""

    async def accept(self, inbound: InboundMessage) -> bool:
        """A provider message: stored (the reply follows in the background); False when this
        provider message id was seen before."""
        ...

    async def converse(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        """A message answered within the request (REST, widget): the bot's messages, or None
        when this message id was already handled."""
        ...

    async def record_status(self, tenant: Tenant, provider: str, channel: str,
                            update: StatusUpdate) -> None:
        """A provider's report on a message we sent."""
        ...


class WebSockets(Protocol):
    """Live pushes to a web conversation's open sockets (connectors/channels/web/push.py)."""

    def listen(self, sender_id: str, deliver: Callable[[list[dict[str, Any]]], Awaitable[None]]
               ) -> AbstractContextManager[None]:
        """While open, `deliver` gets the frames pushed to the conversation (agents' replies)."""
        ...


class TenantDirectory(Protocol):
    async def get(self, key: str) -> Tenant:
        """The tenant whose slug or id is `key`; raises UnknownTenant."""
        ...


class ApiKeys(Protocol):
    """Checks a shop's API keys (tenants.api_keys.ApiKeyVerifier)."""

    async def verify(self, token: str | None, tenant_id: str, scope: str = "rest") -> ApiKey:
        """The active key for this shop and scope; raises InvalidApiKey."""
        ...


class SealedCredentials(Protocol):
    def all(self, tenant: Tenant) -> Mapping[str, Any]:
        """The shop's decrypted credentials, every section."""
        ...


@dataclass(frozen=True)
class ChannelSettings:
    """The few settings channels read."""

    widget_secret: bytes = field(repr=False)  # signs web visitors' tokens; never in a repr
    public_base_url: str | None = None  # the URL providers call, when a proxy fronts us
    graph_api_url: str = "https://graph.facebook.com"  # WhatsApp media links


@dataclass(frozen=True)
class ChannelContext:
    """The one object a channel gets from the gateway (`context_of(request)`)."""

    settings: ChannelSettings
    inbox: ChannelInbox
    tenants: TenantDirectory
    sealed: SealedCredentials
    history: History  # a conversation's stored messages (the widget shows them)
    replay: ReplayGuard  # signed tokens used once (Mailgun)
    api_keys: ApiKeys  # the shops' API keys (REST)
    web_sockets: WebSockets | None = None  # agents' replies pushed to open widget sockets

    async def tenant(self, slug: str) -> Tenant:
        """The shop the URL names; 404 when none is served here."""
        try:
            return await self.tenants.get(slug)
        except UnknownTenant:
            raise TenantNotFound(f"No shop called '{slug[:64]}' is served here.") from None

    async def api_client(self, request: Request, tenant: Tenant, scope: str = "rest") -> ApiKey:
        """The shop's own key the request carries (`Authorization: Bearer <key>`); 401 when it
        is missing, malformed, unknown, revoked or another shop's, all answered alike."""
        scheme, _, token = (request.headers.get("authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("This endpoint needs the shop's API key: "
                               "'Authorization: Bearer <key>'.")
        try:
            return await self.api_keys.verify(token.strip(), tenant.id, scope)
        except InvalidApiKey:
            raise Unauthorized("The API key is not valid for this shop "
                               "(unknown, revoked or another shop's).") from None

    def credentials(self, tenant: Tenant, channel: Channel) -> Mapping[str, Any]:
        """The shop's credentials for this channel; 404 unless they pass its check."""
        return channel.section_of(self.sealed.all(tenant))

    def public_url(self, request: Request) -> str:
        """The URL exactly as the provider called it (scheme, host, port, path, query), for
        signatures computed over it. Behind a proxy the gateway sees another URL:
        PUBLIC_BASE_URL names the public origin."""
        base = self.settings.public_base_url
        if not base:
            return request.url
        query = f"?{request.query_string}" if request.query_string else ""
        return f"{base.rstrip('/')}{request.path}{query}"

    def public_origin(self, request: Request) -> str:
        """Where visitors and providers reach us (widget script URLs)."""
        base = self.settings.public_base_url
        return base.rstrip("/") if base else f"{request.scheme}://{request.host}"


def context_of(request: Request) -> ChannelContext:
    context = request.app.ctx.channels
    assert isinstance(context, ChannelContext), "the app has no ChannelContext (connectors/app.py)"
    return context
