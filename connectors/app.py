"""The gateway app factory: connections open in listeners and live on app.ctx."""

from __future__ import annotations

import logging

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

from connectors import health, rest
from connectors.errors import GatewayError, TenantNotFound
from connectors.rasa_client import RasaClient
from connectors.relay import Relay
from core.db import create_engine, session_factory
from core.settings import Settings
from tenants import Tenant, TenantResolver, UnknownTenant

log = logging.getLogger(__name__)


def create_app(settings: Settings, name: str = "switchboard-gateway") -> Sanic:
    app = Sanic(name, configure_logging=False)  # core.logs owns the log format
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.blueprint(rest.bp)
    app.blueprint(health.bp)

    @app.before_server_start
    async def open_connections(app: Sanic) -> None:
        app.ctx.engine = create_engine(settings.database_url)
        app.ctx.tracker_engine = (
            create_engine(settings.tracker_store_url)
            if settings.uses_embedded_storage
            else app.ctx.engine
        )
        sessions = session_factory(app.ctx.engine)
        resolver = TenantResolver(sessions)
        app.ctx.rasa = RasaClient(
            settings.rasa_url, settings.rasa_token, settings.rasa_timeout, settings.action_server_url
        )
        app.ctx.relay = Relay(sessions, app.ctx.rasa)
        app.ctx.redis = None
        if settings.redis_url:
            import redis.asyncio as aioredis

            app.ctx.redis = aioredis.from_url(settings.redis_url)

        async def resolve_tenant(slug: str) -> Tenant:
            try:
                return await resolver.get(slug)
            except UnknownTenant:
                raise TenantNotFound(f"No shop called '{slug[:64]}' is served here.") from None

        app.ctx.resolve_tenant = resolve_tenant

    @app.after_server_stop
    async def close_connections(app: Sanic) -> None:
        await app.ctx.relay.drain()
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
