"""The Stripe sandbox (devtools/stripe_sandbox) as a real HTTP server on a free loopback port.

Point stripe-python at it, as the product does with STRIPE_API_BASE::

    async with stripe_server(webhook_url=gateway + "/billing/stripe/webhook") as fake:
        client = fake.client()          # stripe.StripeClient on fake.base_url, HTTPX, async
        customer = await client.v1.customers.create_async({"email": "a@b.example"})
        await fake.sandbox.complete_checkout(session.id)   # signed events to the webhook URL

`fake.sandbox` is the `StripeSandbox`: what it received (customers, checkout_sessions,
calls with their idempotency keys, meter_events counted once per identifier,
meter_received), failures to inject (`fail_next`), and the actions that send events. The
server runs in the test's event loop (Sanic's own server, like the gateway's tests), so the
product's async calls and the sandbox's webhook POSTs meet without threads. The pricing is
billing/plans.yml's unless `prices` says otherwise.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
import stripe
from sanic import Sanic

from core.settings import ROOT
from devtools.stripe_sandbox import Price, StripeSandbox, prices_from_plans
from devtools.stripe_sandbox.app import add_routes
from devtools.stripe_sandbox.sandbox import Post, http_post
from tests.servers import free_port, serving

API_KEY = "sk_test_sandbox_tests"
WEBHOOK_SECRET = "whsec_sandbox_tests"


@dataclass
class StripeServer:
    sandbox: StripeSandbox
    base_url: str
    api_key: str

    def client(self, max_network_retries: int = 2) -> stripe.StripeClient:
        """A StripeClient for this server, as billing/stripe_api.py makes one."""
        return stripe.StripeClient(self.api_key, base_addresses={"api": self.base_url},
                                   http_client=stripe.HTTPXClient(),
                                   max_network_retries=max_network_retries)


@contextlib.asynccontextmanager
async def stripe_server(*, webhook_url: str | None = None,
                        webhook_secret: str = WEBHOOK_SECRET, api_key: str = API_KEY,
                        prices: dict[str, Price] | None = None, post: Post = http_post,
                        retry_delays: tuple[float, ...] = (0.05, 0.1)
                        ) -> AsyncIterator[StripeServer]:
    """Serve a new sandbox on a free port until the block ends (module doc)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    sandbox = StripeSandbox(
        api_key, prices_from_plans(ROOT / "billing" / "plans.yml") if prices is None else prices,
        base_url, webhook_url=webhook_url, webhook_secret=webhook_secret, post=post,
        retry_delays=retry_delays)
    app = Sanic(f"stripe-sandbox-{uuid.uuid4().hex[:8]}", configure_logging=False)
    add_routes(app, sandbox)
    async with serving(app, port=port):
        try:
            yield StripeServer(sandbox, base_url, api_key)
        finally:
            sandbox.release()


@pytest_asyncio.fixture
async def stripe_fake() -> AsyncIterator[StripeServer]:
    """A running sandbox without a webhook URL (set `fake.sandbox.webhook_url` to send)."""
    async with stripe_server() as fake:
        yield fake
