"""GET /health for anyone, GET /health/details for the host and its monitor.

`/health` is on the public port (load balancers and Docker's healthcheck poll it), so it says
only `{"status": "ok"}` (200) or `{"status": "degraded"}` (503): which store we run on, which
model is loaded and why a dependency failed are a map for an attacker.

`/health/details` names each dependency's state, and answers only a request from loopback that
no proxy forwarded (a proxy on the same host would make every visitor look local) or one with
`Authorization: Bearer <HEALTH_TOKEN>`. Even there a failure is a short code (an exception's
class, an HTTP status), never an exception's text: httpx's texts quote URLs, a database
driver's quote hosts and queries.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json
from sqlalchemy import text

from core.settings import Secret

PROBE_TIMEOUT = 3.0
# Headers a reverse proxy adds: with one present, the peer address is the proxy's, not the client's.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host")


class CheckFailed(Exception):
    """A dependency answered, but not as healthy; `code` is what the details show."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def failure_code(exc: BaseException) -> str:
    """A short, fixed-vocabulary description of a failed probe: never the exception's text."""
    if isinstance(exc, CheckFailed):
        return exc.code
    if isinstance(exc, httpx.HTTPStatusError):
        return f"http_{exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


async def _check(name: str,
                 probe: Callable[[], Awaitable[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    try:
        detail = await asyncio.wait_for(probe(), timeout=PROBE_TIMEOUT)
        return name, {"ok": True, **detail}
    except Exception as exc:  # a health check reports failures, it does not raise them
        return name, {"ok": False, "error": failure_code(exc)}


async def run_checks(ctx: Any) -> dict[str, dict[str, Any]]:
    """Every dependency's state; `ctx` is connectors.app.Connections."""

    async def database() -> dict[str, Any]:
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {"kind": ctx.engine.dialect.name}

    async def tracker_store() -> dict[str, Any]:
        # Rasa silently falls back to an in-memory tracker when its database fails.
        async with ctx.tracker_engine.connect() as conn:
            await conn.execute(text("SELECT 1 FROM events LIMIT 1"))
        return {"kind": ctx.tracker_engine.dialect.name}

    async def rasa() -> dict[str, Any]:
        status = await ctx.rasa.status()
        if not status.get("model_id"):
            raise CheckFailed("no_model")
        return {"model": status.get("model_file")}

    async def actions() -> dict[str, Any]:
        if not await ctx.rasa.actions_alive():
            raise CheckFailed("not_answering")
        return {}

    checks = [_check("database", database), _check("tracker_store", tracker_store),
              _check("rasa", rasa), _check("actions", actions)]
    if ctx.redis is not None:
        async def redis() -> dict[str, Any]:
            await ctx.redis.ping()
            return {}
        checks.append(_check("redis", redis))
    return dict(await asyncio.gather(*checks))


def from_this_host(request: Request) -> bool:
    """The peer is a loopback address and no proxy relayed the request."""
    if any(header in request.headers for header in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.conn_info.client_ip if request.conn_info
                                    else "").is_loopback
    except ValueError:
        return False


def bearer_matches(request: Request, token: Secret | None) -> bool:
    if not token:
        return False
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.reveal().encode())


def blueprint(health_token: Secret | None) -> Blueprint:
    """The two routes; `health_token` (HEALTH_TOKEN) opens the details to other hosts."""
    bp = Blueprint("health")

    @bp.get("/health")
    async def health(request: Request) -> HTTPResponse:
        results = await run_checks(request.app.ctx.connections)
        ok = all(r["ok"] for r in results.values())
        return json({"status": "ok" if ok else "degraded"}, status=200 if ok else 503)

    @bp.get("/health/details")
    async def details(request: Request) -> HTTPResponse:
        if not (from_this_host(request) or bearer_matches(request, health_token)):
            return json({"error": "forbidden",
                         "detail": "Details answer on loopback or with the health token."},
                        status=403)
        results = await run_checks(request.app.ctx.connections)
        ok = all(r["ok"] for r in results.values())
        return json({"status": "ok" if ok else "degraded", "checks": results},
                    status=200 if ok else 503)

    return bp
