"""The public URL a provider called, for signatures computed over it (Twilio).

Behind a proxy or tunnel the URL the gateway sees (http://127.0.0.1:8000/...) is not the one
the provider signed (https://bot.example.com/...). PUBLIC_BASE_URL names the public origin;
without it the request's own URL is used (direct exposure, local tests).
"""

from __future__ import annotations

from contextvars import ContextVar

from sanic import Request

# The origin of the request being handled (set by the app for each request), for callback
# URLs computed later in background tasks when PUBLIC_BASE_URL is not set.
request_origin: ContextVar[str | None] = ContextVar("request_origin", default=None)


def public_url(request: Request) -> str:
    """Scheme, host, port, path and query exactly as the provider called them."""
    base: str | None = getattr(request.app.ctx, "public_base_url", None)
    if not base:
        return request.url
    query = f"?{request.query_string}" if request.query_string else ""
    return f"{base.rstrip('/')}{request.path}{query}"


def public_origin(request: Request) -> str:
    """Where providers reach us, for callback URLs we hand them (status callbacks)."""
    base: str | None = getattr(request.app.ctx, "public_base_url", None)
    if base:
        return base.rstrip("/")
    return f"{request.scheme}://{request.host}"
