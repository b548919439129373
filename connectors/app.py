"""The gateway app factory: connections open in listeners, channels come from the registry.

Every channel in connectors/channels/ is mounted under /channels/<tenant_slug>/<segment> and gets
one `ChannelContext` (its whole view of the gateway); the inbox, the outbox and the Rasa client
are built here once per process, and typed errors map to one HTTP answer here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import httpx
import redis.asyncio as aioredis
from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json, raw
from sqlalchemy.ext.asyncio import AsyncEngine

from billing.account import Accounts
from billing.conversations import ConversationMeter
from billing.plans import billing_enabled, pricing
from connectors import agent_replies, billing_webhook, health, metrics
from connectors.agent_replies import AgentReplies
from connectors.bounds import limit_bodies
from connectors.channels import CHANNELS
from connectors.channels.contract import ChannelContext, ChannelSettings
from connectors.channels.rest.callbacks import RestCallbacks
from connectors.channels.web.push import WebPush
from connectors.credentials import ChannelCredentials
from connectors.errors import GatewayError
from connectors.inbox import Inbox
from connectors.outbox import Outbox
from connectors.rasa_client import RasaClient
from connectors.replay import ReplayGuard
from connectors.urls import request_origin
from core import favicon
from core.conversations import StoredMessage, recent_messages
from core.db import create_engine, session_factory
from core.live import HttpRelay, publisher
from core.settings import Settings
from core.tasks import TaskSet
from tenants import TenantResolver
from tenants.api_keys import ApiKeyVerifier
from tenants.crypto import CredentialsBox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Connections:
    """What the gateway opens at start and closes at stop (the health check reads them)."""

    engine: AsyncEngine
    tracker_engine: AsyncEngine  # Rasa's `events` table (the same engine unless embedded)
    redis: aioredis.Redis | None
    rasa: RasaClient
    provider_http: httpx.AsyncClient  # outbound calls to providers
    # Calls to shops' own servers (REST reply callbacks): public addresses only, unless
    # ALLOW_PRIVATE_DESTINATIONS (core/destinations.py).
    shop_http: httpx.AsyncClient


STOP_WAIT = 10.0  # seconds the cancelled background loops get to end at a stop


def create_app(settings: Settings, name: str = "switchboard-gateway") -> Sanic:
    app = Sanic(name, configure_logging=False)  # core.logs owns the log format
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.trusted_proxies = settings.trusted_proxies  # connectors/proxies.py
    for channel in CHANNELS:
        app.blueprint(channel.blueprint(), url_prefix=channel.url_prefix)
    app.blueprint(health.blueprint(settings.health_token))
    app.blueprint(agent_replies.routes(settings.internal_token))
    app.blueprint(billing_webhook.routes(settings))

    async def icon(request: Request) -> HTTPResponse:  # the widget demo page's tab
        return raw(favicon.icon(), content_type=favicon.CONTENT_TYPE,
                   headers={"Cache-Control": "public, max-age=86400"})

    app.add_route(icon, "/favicon.ico", methods=["GET"], name="favicon")
    answer_errors(app)
    limit_bodies(app)
    metrics.count_webhook_responses(app, {c.segment: c.name for c in CHANNELS})
    background = TaskSet()

    @app.before_server_start
    async def open_connections(app: Sanic) -> None:
        engine = create_engine(settings.database_url)
        redis = None
        if settings.redis_url:
            # Under load a request waits for a free connection instead of failing at once
            # (the default pool raises "Too many connections" past 100 commands in flight).
            redis = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=100, timeout=5))
        connections = app.ctx.connections = Connections(
            engine=engine,
            tracker_engine=(create_engine(settings.tracker_store_url)
                            if settings.uses_embedded_storage else engine),
            redis=redis,
            rasa=RasaClient(settings.rasa_url, settings.rasa_jwt_key,
                            settings.rasa_timeout, settings.action_server_url),
            # Outbound calls to providers: bounded waits, never the event loop.
            provider_http=httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0)),
            shop_http=settings.destinations.client(timeout=httpx.Timeout(10.0, connect=3.0)),
        )
        sessions = session_factory(engine)
        sealed = ChannelCredentials(CredentialsBox(settings.credentials_key.reveal()))
        senders = {c.name: c.sender(connections.provider_http, settings)
                   for c in CHANNELS if c.sender is not None}
        outbox = Outbox(sessions, sealed, {c.name: c for c in CHANNELS if c.name in senders},
                        senders, public_base_url=settings.public_base_url,
                        send_attempts=settings.send_attempts)
        tenants = TenantResolver(sessions)
        # Shops' plans (billing/): None pricing when billing is off, every shop unlimited.
        app.ctx.billing = Accounts(sessions,
                                   pricing(settings) if billing_enabled(settings) else None,
                                   timedelta(days=settings.billing_grace_days))
        # Agents' pages hear of visitors' messages, ratings and deliveries: over Redis when
        # configured, else through the admin service's loopback route (core/live.py).
        live = app.ctx.live = publisher(redis, settings.admin_url,
                                        settings.internal_token.reveal())
        inbox = app.ctx.inbox = Inbox(sessions, connections.rasa, outbox, redis,
                                      tenants=tenants.get, live=live,
                                      meter=ConversationMeter(sessions, app.ctx.billing))
        web_push = app.ctx.web_push = WebPush(redis)
        app.ctx.agent_replies = AgentReplies(
            sessions, tenants.get, outbox, sealed, web_push,
            RestCallbacks(connections.shop_http, attempts=settings.send_attempts))

        async def history(tenant_id: str, sender_id: str, limit: int) -> list[StoredMessage]:
            return await recent_messages(sessions, tenant_id, sender_id, limit)

        app.ctx.channels = ChannelContext(
            settings=ChannelSettings(widget_secret=settings.widget_secret,
                                     public_base_url=settings.public_base_url,
                                     graph_api_url=settings.graph_api_url),
            inbox=inbox, tenants=tenants, sealed=sealed, history=history,
            replay=ReplayGuard(redis), api_keys=ApiKeyVerifier(sessions), web_sockets=web_push)
        app.ctx.tenants = tenants
        app.ctx.sessions = sessions

    @app.after_server_start
    async def sweep_leases(app: Sanic) -> None:
        # At once (what a crash left), then every few seconds (connectors/leases.py).
        app.ctx.sweeps = background.spawn(app.ctx.inbox.run_sweeps(), name="lease-sweeps")
        app.ctx.queue_depth = background.spawn(metrics.track_queue_depth(app.ctx.sessions),
                                               name="queue-depth")
        # Agents' replies for widget sockets held here, from any gateway (web/push.py).
        app.ctx.web_pushes = background.spawn(app.ctx.web_push.run(), name="web-pushes")

    @app.on_request
    async def remember_origin(request: Request) -> None:
        request_origin.set(f"{request.scheme}://{request.host}")

    @app.before_server_stop
    async def stop_sweeping(app: Sanic) -> None:
        for name in ("sweeps", "queue_depth", "web_pushes"):
            task = getattr(app.ctx, name, None)
            if task is not None:
                task.cancel()

    @app.after_server_stop
    async def close_connections(app: Sanic) -> None:
        # The loops were cancelled; one that does not end (a Redis or database call that does
        # not give way to the cancel) must not hold the stop forever: a fresh-clone suite
        # once hung here for good (tests/connectors/test_stripe_webhook.py on PostgreSQL).
        await background.drain(STOP_WAIT)
        await app.ctx.inbox.drain()
        await app.ctx.agent_replies.drain()
        if isinstance(app.ctx.live, HttpRelay):
            await app.ctx.live.aclose()
        connections: Connections = app.ctx.connections
        await connections.provider_http.aclose()
        await connections.shop_http.aclose()
        await connections.rasa.aclose()
        if connections.redis is not None:
            await connections.redis.aclose()
        await connections.engine.dispose()
        await connections.tracker_engine.dispose()

    return app


def answer_errors(app: Sanic) -> None:
    """Typed errors to their HTTP answer, JSON `{"detail"}` always; never a traceback."""

    @app.exception(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> HTTPResponse:
        return json({"detail": exc.detail}, status=exc.status, headers=exc.headers or None)

    @app.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        return json({"detail": str(exc) or "Request failed."}, status=exc.status_code)

    @app.exception(Exception)
    async def unexpected(request: Request, exc: Exception) -> HTTPResponse:
        log.exception("unhandled error", extra={"path": request.path})
        return json({"detail": "Something went wrong on our side; it has been logged."}, status=500)
