"""Sanic's ASGI test client, with the app started once instead of around every request.

sanic-testing's SanicASGITestClient resets the router, runs the app's start-up (touch-up, route
finalisation) and its before/after_server_start listeners, then the stop listeners, around
every single request: for the admin app that is a new database engine, Redis client, gateway
client, job worker and sweeps per request, about 0.1 s on an idle machine and most of an admin
test's time (a profile of test_matrix.py: 84 start-ups for 9 tests). Here the app starts at the
first request of any RunningAppClient and runs until `stop_app` (a fixture's teardown), as one
running server would: the same requests and listeners, the app's caches lasting a test.
"""

from __future__ import annotations

from typing import Any

import httpx
from sanic import Sanic
from sanic_testing.testing import (  # type: ignore[import-untyped]  # no py.typed
    ASGI_BASE_URL,
    SanicASGITestClient,
    TestingResponse,
)


async def start_app(app: Sanic) -> None:
    """What a server does once before serving: start-up and the server-start listeners."""
    if getattr(app.ctx, "test_running", False):
        return
    app.router.reset()
    app.signal_router.reset()
    # Sanic's touch-up recompiles the request path without the signals nobody listens to: a
    # speed-up for a server's thousands of requests, 60 ms of parsing and compiling for a test
    # app's few. Behaviour is the same either way.
    app.config.TOUCHUP = False
    await app._startup()
    await app._server_event("init", "before")
    await app._server_event("init", "after")
    app.ctx.test_running = True


async def stop_app(app: Sanic) -> None:
    """The server-stop listeners, once, when the app was started."""
    if not getattr(app.ctx, "test_running", False):
        return
    app.ctx.test_running = False
    await app._server_event("shutdown", "before")
    await app._server_event("shutdown", "after")


class RunningAppClient(SanicASGITestClient):
    """`await client.get(...)` answers `(request, response)` like SanicASGITestClient. Several
    clients (one cookie jar each) may share one app; whoever made the app calls `stop_app`."""

    async def request(
            self, method: str, url: str, gather_request: bool = True, *args: Any,
            **kwargs: Any) -> tuple[Any, TestingResponse]:
        app = self.sanic_app
        await start_app(app)
        for route in app.router.routes:
            if self._collect_request not in route.extra.request_middleware:
                route.extra.request_middleware.appendleft(self._collect_request)
        if self._collect_request not in app.request_middleware:
            app.request_middleware.appendleft(self._collect_request)
        if not url.startswith(("http:", "https:", "//", "ws:", "wss:")):
            url = ASGI_BASE_URL + (url if url.startswith("/") else f"/{url}")
        self.gather_request = gather_request
        response = await httpx.AsyncClient.request(self, method, url, *args, **kwargs)
        response.__class__ = TestingResponse
        return (self.last_request if gather_request else None), response
