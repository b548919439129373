"""GET /health: each dependency's state, 200 when all are up, 503 otherwise."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json
from sqlalchemy import text

log = logging.getLogger(__name__)

bp = Blueprint("health")


async def _check(name: str,
                 probe: Callable[[], Awaitable[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    try:
        detail = await asyncio.wait_for(probe(), timeout=3.0)
        return name, {"ok": True, **detail}
    except Exception as exc:  # a health check reports failures, it does not raise them
        return name, {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}


@bp.get("/health")
async def health(request: Request) -> HTTPResponse:
    ctx = request.app.ctx.connections  # connectors.app.Connections

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
            raise RuntimeError("no model loaded")
        return {"model": status.get("model_file")}

    async def actions() -> dict[str, Any]:
        if not await ctx.rasa.actions_alive():
            raise RuntimeError("action server not answering")
        return {}

    checks = [_check("database", database), _check("tracker_store", tracker_store),
              _check("rasa", rasa), _check("actions", actions)]
    if ctx.redis is not None:
        async def redis() -> dict[str, Any]:
            await ctx.redis.ping()
            return {}
        checks.append(_check("redis", redis))
    results = dict(await asyncio.gather(*checks))
    ok = all(r["ok"] for r in results.values())
    return json({"status": "ok" if ok else "degraded", "checks": results},
                status=200 if ok else 503)
