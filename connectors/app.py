"""The gateway app factory: connections open in listeners and live on app.ctx."""

from __future__ import annotations

import asyncio
import logging

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

import httpx

from connectors import email_inbound, health, meta_whatsapp, rest, twilio, web
from connectors.credentials import ChannelCredentials
from connectors.email_sender import SmtpSender
from connectors.errors import GatewayError, TenantNotFound
from connectors.meta_sender import MetaWhatsAppSender
from connectors.pipeline import Inbox, Route
from connectors.rasa_client import RasaClient
from connectors.relay import Relay
from connectors.twilio_sender import TwilioSender
from connectors.urls import request_origin
from core.db import create_engine, session_factory
from core.settings import Settings
from tenants import Tenant, TenantResolver, UnknownTenant
from tenants.crypto import CredentialsBox

log = logging.getLogger(__name__)


def create_app(settings: Settings, name: str = "switchboard-gateway") -> Sanic:
    app = Sanic(name, configure_logging=False)  # core.logs owns the log format
    app.config.FALLBACK_ERROR_FORMAT = "json"
    for channel in (rest, web, twilio, meta_whatsapp, email_inbound, health):
        app.blueprint(channel.bp)
    app.ctx.public_base_url = settings.public_base_url
    app.ctx.graph_api_base = settings.graph_api_url
    app.ctx.widget_secret = settings.widget_secret

    @app.before_server_start
    async def open_connections(app: Sanic) -> None:
        app.ctx.engine = create_engine(settings.database_url)
        app.ctx.tracker_engine = (
            create_engine(settings.tracker_store_url)
            if settings.uses_embedded_storage
            else app.ctx.engine
        )
        sessions = app.ctx.sessions = session_factory(app.ctx.engine)
        resolver = TenantResolver(sessions)
        app.ctx.rasa = RasaClient(
            settings.rasa_url, settings.rasa_token, settings.rasa_timeout, settings.action_server_url
        )
        app.ctx.relay = Relay(sessions, app.ctx.rasa)
        app.ctx.redis = None
        if settings.redis_url:
            import redis.asyncio as aioredis

            # Under load a request waits for a free connection instead of failing at once
            # (the default pool raises "Too many connections" past 100 commands in flight).
            app.ctx.redis = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=100, timeout=5))
        # Outbound calls to providers: bounded waits, never the event loop.
        app.ctx.provider_http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))
        credentials = ChannelCredentials(CredentialsBox(settings.credentials_key))
        app.ctx.channel_credentials = credentials.section
        twilio_route = Route(TwilioSender(app.ctx.provider_http, settings.twilio_api_url),
                             "twilio", status_path="twilio/status")
        app.ctx.inbox = Inbox(
            sessions, app.ctx.relay, credentials,
            routes={
                "twilio": twilio_route,
                "meta": Route(MetaWhatsAppSender(app.ctx.provider_http, settings.graph_api_url),
                              "meta_whatsapp"),
                "mailgun": Route(SmtpSender(), "email"),
                "sendgrid": Route(SmtpSender(), "email"),
            },
            redis=app.ctx.redis, public_base_url=settings.public_base_url,
            send_attempts=settings.send_attempts)
        app.ctx.deliveries = app.ctx.inbox

        async def resolve_tenant(slug: str) -> Tenant:
            try:
                return await resolver.get(slug)
            except UnknownTenant:
                raise TenantNotFound(f"No shop called '{slug[:64]}' is served here.") from None

        app.ctx.resolve_tenant = resolve_tenant
        app.ctx.resolve_tenant_by_id = resolver.get

    @app.after_server_start
    async def answer_what_a_crash_left(app: Sanic) -> None:
        app.ctx.recovery = asyncio.create_task(app.ctx.inbox.recover(app.ctx.resolve_tenant_by_id))

    @app.on_request
    async def remember_origin(request: Request) -> None:
        request_origin.set(f"{request.scheme}://{request.host}")

    @app.after_server_stop
    async def close_connections(app: Sanic) -> None:
        await asyncio.gather(app.ctx.recovery, return_exceptions=True)
        await app.ctx.inbox.drain()
        await app.ctx.relay.drain()
        await app.ctx.provider_http.aclose()
        await app.ctx.rasa.aclose()
        if app.ctx.redis is not None:
            await app.ctx.redis.aclose()
        await app.ctx.engine.dispose()
        await app.ctx.tracker_engine.dispose()

    @app.exception(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> HTTPResponse:
        return json({"detail": exc.detail}, status=exc.status)

    @app.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        return json({"detail": str(exc) or "Request failed."}, status=exc.status_code)

    @app.exception(Exception)
    async def unexpected(request: Request, exc: Exception) -> HTTPResponse:
        log.exception("unhandled error", extra={"path": request.path})
        return json({"detail": "Something went wrong on our side; it has been logged."}, status=500)

    return app
