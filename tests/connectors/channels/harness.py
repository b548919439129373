"""One harness for every channel's tests, as Zulip's `WebhookTestCase` is for its integrations.

`ChannelHarness(CHANNEL, "twilio", credentials)` mounts the channel's real routes (from its
registry entry, under its real URL prefix) on a small Sanic app with the gateway's real error
answers and body limits and a real `ChannelContext` whose parts are in-memory stand-ins: one
shop (plus any others given), that shop's sealed credentials, one REST API key per shop
(`h.api_key(tenant)`, revocable) and a `FakeInbox` that records what the channel handed over.
Captured provider payloads come from `tests/fixtures/<fixtures>/`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sanic import Sanic

from connectors.app import answer_errors
from connectors.bounds import limit_bodies
from connectors.channels.contract import Channel, ChannelContext, ChannelInbox, ChannelSettings
from connectors.messages import InboundMessage, StatusUpdate
from connectors.replay import ReplayGuard
from core.conversations import StoredMessage
from core.db import utcnow
from tenants import Tenant, UnknownTenant
from tenants.api_keys import ApiKey, InvalidApiKey

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SECRET = b"widget-secret-for-tests-0123456789"
_apps = itertools.count()

Replies = Callable[[InboundMessage], Awaitable[list[dict[str, Any]] | None]]


def shop(slug: str = "shop", tenant_id: str | None = None, **fields: Any) -> Tenant:
    """A tenant as the resolver would return it."""
    values: dict[str, Any] = dict(id=tenant_id or f"t-{slug}", slug=slug, name=slug.title(),
                                  greeting=None, return_window_days=30, order_backend="demo",
                                  credentials_encrypted=None)
    return Tenant(**{**values, **fields})


class FakeInbox:
    """Records what a channel hands over; dedupes provider ids like the real inbox."""

    def __init__(self, replies: Replies | None = None) -> None:
        self.offered: list[InboundMessage] = []  # every accept call, repeats included
        self.accepted: list[InboundMessage] = []  # the first of each provider id
        self.conversed: list[InboundMessage] = []
        self.statuses: list[tuple[Tenant, str, str, StatusUpdate]] = []
        self._seen: set[tuple[str, str, str | None]] = set()
        self._replies = replies

    async def accept(self, inbound: InboundMessage) -> bool:
        self.offered.append(inbound)
        key = (inbound.tenant.id, inbound.channel, inbound.message_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        self.accepted.append(inbound)
        return True

    async def converse(self, inbound: InboundMessage) -> list[dict[str, Any]] | None:
        self.conversed.append(inbound)
        if self._replies is None:
            return [{"text": f"echo: {inbound.text}"}]
        return await self._replies(inbound)

    async def record_status(self, tenant: Tenant, provider: str, channel: str,
                            update: StatusUpdate) -> None:
        self.statuses.append((tenant, provider, channel, update))


class Shops:
    """The tenant directory: by slug or id."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self._by_key = {key: t for t in tenants for key in (t.slug, t.id)}

    async def get(self, key: str) -> Tenant:
        try:
            return self._by_key[key]
        except KeyError:
            raise UnknownTenant(key) from None


class Sealed:
    """Each shop's credentials as the gateway decrypts them."""

    def __init__(self, by_tenant: Mapping[str, Mapping[str, Any]]) -> None:
        self._by_tenant = by_tenant

    def all(self, tenant: Tenant) -> Mapping[str, Any]:
        return self._by_tenant.get(tenant.id, {})


class FakeApiKeys:
    """One REST key per shop, as the verifier answers for it (tenants.api_keys)."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self.keys: dict[str, ApiKey] = {}
        for number, tenant in enumerate(tenants):
            prefix = f"{number:012x}"
            self.keys[f"sb_live_{prefix}_{tenant.id:_<43}"[:64]] = ApiKey(
                id=number, tenant_id=tenant.id, scope="rest", name="test", prefix=prefix,
                created_at=utcnow())

    def token(self, tenant: Tenant) -> str:
        return next(t for t, key in self.keys.items() if key.tenant_id == tenant.id)

    def revoke(self, tenant: Tenant) -> None:
        token = self.token(tenant)
        self.keys[token] = ApiKey(**{**vars(self.keys[token]), "revoked_at": utcnow()})

    async def verify(self, token: str | None, tenant_id: str, scope: str = "rest") -> ApiKey:
        key = self.keys.get(token or "")
        if key is None or not key.active or key.tenant_id != tenant_id or key.scope != scope:
            raise InvalidApiKey("refused")
        return key


async def no_history(tenant_id: str, sender_id: str, limit: int) -> list[StoredMessage]:
    return []


class ChannelHarness:
    """`inbox`: what the channel hands over to. `h.inbox` is the FakeInbox that records it; a
    test that brings its own inbox (the real one, for the widget's stored history) finds it
    as `h.context.inbox`."""

    def __init__(self, channel: Channel, fixtures: str,
                 credentials: Mapping[str, Any] | None = None, *,
                 tenant: Tenant | None = None, others: Iterable[Tenant] = (),
                 inbox: ChannelInbox | None = None, public_base_url: str | None = None,
                 graph_api_url: str = "http://graph.test",
                 history: Callable[[str, str, int], Awaitable[list[StoredMessage]]] = no_history,
                 replay: ReplayGuard | None = None) -> None:
        """`credentials`: the shop's section for this channel (None: not set up)."""
        self.channel = channel
        self.fixtures = FIXTURES / fixtures
        self.tenant = tenant or shop()
        self.inbox = inbox if isinstance(inbox, FakeInbox) else FakeInbox()
        sealed = {self.tenant.id: {channel.section: dict(credentials)}} if credentials else {}
        self.others = list(others)
        shops = [self.tenant, *self.others]
        self.api_keys = FakeApiKeys(shops)
        self.context = ChannelContext(
            settings=ChannelSettings(widget_secret=SECRET, public_base_url=public_base_url,
                                     graph_api_url=graph_api_url),
            inbox=self.inbox if inbox is None else inbox, tenants=Shops(shops),
            sealed=Sealed(sealed), history=history, replay=replay or ReplayGuard(),
            api_keys=self.api_keys)
        self.app = Sanic(f"{channel.name}_test_{next(_apps)}")
        self.app.blueprint(channel.blueprint(), url_prefix=channel.url_prefix)
        answer_errors(self.app)
        limit_bodies(self.app)
        self.app.ctx.channels = self.context

    def api_key(self, tenant: Tenant | None = None) -> str:
        """The REST API key of a shop (the harness's own by default)."""
        return self.api_keys.token(tenant or self.tenant)

    def url(self, path: str, slug: str | None = None) -> str:
        """`/channels/<shop>/<the channel's segment>/<path>`."""
        return f"/channels/{slug or self.tenant.slug}/{self.channel.segment}/{path.lstrip('/')}"

    def fixture_path(self, name: str) -> Path:
        return self.fixtures / name

    def fixture_text(self, name: str) -> str:
        return self.fixture_path(name).read_text(encoding="utf-8")

    def fixture_json(self, name: str) -> Any:
        return json.loads(self.fixture_text(name))

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Any:
        _, response = await self.app.asgi_client.post(path, content=body, headers=dict(headers))
        return response

    async def get(self, path: str, **params: Any) -> Any:
        _, response = await self.app.asgi_client.get(path, params=params)
        return response
