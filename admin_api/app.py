"""The admin service's app factory: connections open in listeners, routes come from the one
`API` declaration (admin_api/api.py), typed errors map to one HTTP answer here."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis.asyncio as aioredis
from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

import admin_api.routes  # noqa: F401  (declares every route on API)
from admin_api import auth, billing_tasks, live, nlg, notices, retention
from admin_api.api import API, BODY_LIMIT
from admin_api.errors import ApiError, PayloadTooLarge
from admin_api.gateway import GatewayClient
from admin_api.pages import mount as mount_pages
from admin_api.rasa import RasaTracker
from admin_api.worker import install as install_worker
from admin_api.workshop import WorkshopClient
from billing.account import Accounts
from billing.plans import billing_enabled, pricing
from billing.stripe_api import StripeApi
from connectors.bounds import refuse_bodies_over_limits
from core.db import create_engine, session_factory
from core.settings import Settings
from tenants.api_keys import ApiKeyVerifier
from tenants.crypto import CredentialsBox

log = logging.getLogger(__name__)
TITLE = "Switchboard admin API"
VERSION = "1.0.0"


def create_app(settings: Settings, name: str = "switchboard-admin") -> Sanic:
    app = Sanic(name, configure_logging=False)  # core.logs owns the log format
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.trusted_proxies = settings.trusted_proxies  # connectors/proxies.py
    upload_limit = settings.upload_max_bytes + 64 * 1024  # multipart overhead
    app.config.REQUEST_MAX_SIZE = upload_limit  # the largest route limit: nothing bigger is read
    app.ctx.settings = settings
    answer_errors(app)
    # Each route's own limit, refused from Content-Length before the body is read: uploads
    # take theirs, every other route (public ones too) BODY_LIMIT (admin_api/api.py).
    refuse_bodies_over_limits(app, BODY_LIMIT, PayloadTooLarge)
    API.mount(app, auth.authenticate, auth.check_csrf, upload_limit)
    nlg.install(app)  # Rasa's NLG endpoint (/nlg): the shop's texts without retraining
    mount_pages(app)  # the owner page (/app/) and the invitation page (/invite)
    document = API.openapi(title=TITLE, version=VERSION)

    @app.get("/openapi.json", name="openapi")
    async def openapi(request: Request) -> HTTPResponse:
        return json(document)

    @app.get("/health", name="health")
    async def health(request: Request) -> HTTPResponse:
        return json({"status": "ok"})

    @app.before_server_start
    async def open_connections(app: Sanic) -> None:
        if settings.smtp_url and not settings.admin_public_url:
            log.warning("ADMIN_PUBLIC_URL is not set: password reset mails link to %s "
                        "(admin_api/passwords.py); set it to the admin service's public origin",
                        settings.admin_url)
        engine = create_engine(settings.database_url)
        app.ctx.engine = engine
        app.ctx.sessions = session_factory(engine)
        app.ctx.redis = (aioredis.Redis.from_url(settings.redis_url)
                         if settings.redis_url else None)
        app.ctx.keys = ApiKeyVerifier(app.ctx.sessions)
        app.ctx.box = CredentialsBox(settings.credentials_key.reveal())
        # The agent inbox hands replies to the gateway's outbox and tells Rasa (loopback).
        inbox = app.ctx.settings  # (tests point these at their fakes)
        app.ctx.gateway = GatewayClient(inbox.gateway_url, inbox.internal_token)
        app.ctx.rasa = RasaTracker(inbox.rasa_url, inbox.rasa_jwt_key)
        # Rasa's own checks of designers' drafts run in the workshop (bot/workshop.py).
        app.ctx.workshop = WorkshopClient(inbox.workshop_url, inbox.rasa_jwt_key)
        # Shops' plans (billing/): None pricing when billing is off, every shop unlimited.
        app.ctx.billing = Accounts(app.ctx.sessions,
                                   pricing(settings) if billing_enabled(settings) else None,
                                   timedelta(days=settings.billing_grace_days))
        app.ctx.stripe = StripeApi.from_settings(settings)  # None when billing is off

    @app.after_server_stop
    async def close_connections(app: Sanic) -> None:
        await app.ctx.gateway.aclose()
        await app.ctx.rasa.aclose()
        await app.ctx.workshop.aclose()
        if app.ctx.stripe is not None:
            await app.ctx.stripe.aclose()
        if app.ctx.redis is not None:
            await app.ctx.redis.aclose()
        await app.ctx.engine.dispose()

    live.install(app)  # app.ctx.live: agents' live stream, /internal/live, the Redis relay
    notices.install(app)  # a visitor waits and nobody has the inbox open: mail the shop

    install_worker(app, settings)  # runs queued jobs (knowledge ingestion) off the request path
    retention.install(app)  # hourly: conversations past each shop's retention_days go
    billing_tasks.install(app)  # billing on: usage to Stripe's meters, limit warnings mailed
    return app


def answer_errors(app: Sanic) -> None:
    """Every error is `{"detail": ...}` with its status; an unexpected one is logged and is a
    plain 500 that says nothing about the internals."""

    @app.exception(ApiError)
    async def api_error(request: Request, exc: ApiError) -> HTTPResponse:
        return json({**exc.extra, "detail": exc.detail}, status=exc.status, headers=exc.headers)

    @app.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        status = getattr(exc, "status_code", 500) or 500
        detail = str(exc) if status < 500 else "internal error"
        return json({"detail": detail}, status=status, headers=getattr(exc, "headers", None))

    @app.exception(Exception)
    async def unexpected(request: Request, exc: Exception) -> HTTPResponse:
        log.exception("admin request failed", extra={"path": request.path})
        return json({"detail": "internal error"}, status=500)
