"""`make run`'s Stripe: the bootstrap puts the sandbox's keys in var/dev.env once, and the
provider sandbox (devtools/sandbox.py, configured from .env.defaults and that file) answers
Stripe's API next to Twilio's and sends Checkout's signed events to the gateway's port."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import stripe

from core.settings import ROOT, Settings
from devtools.bootstrap import env_value, set_env_value, stripe_dev_keys
from devtools.sandbox import create_app, stripe_sandbox
from tests.devtools.test_stripe_sandbox import WebhookReceiver, click
from tests.servers import free_port, serving


def test_dev_env_gets_stripe_keys_once(tmp_path: Path) -> None:
    dev_env = tmp_path / "dev.env"
    dev_env.write_text("# secrets\nRASA_TOKEN=abc\n")
    stripe_dev_keys(dev_env)
    key, secret = env_value(dev_env, "STRIPE_API_KEY"), env_value(dev_env, "STRIPE_WEBHOOK_SECRET")
    assert key and key.startswith("sk_test_sandbox_") and secret and secret.startswith("whsec_")
    assert env_value(dev_env, "RASA_TOKEN") == "abc" and dev_env.stat().st_mode & 0o077 == 0
    stripe_dev_keys(dev_env)  # the next `make run` keeps them
    assert (env_value(dev_env, "STRIPE_API_KEY"), env_value(dev_env, "STRIPE_WEBHOOK_SECRET")) \
        == (key, secret)
    set_env_value(dev_env, "STRIPE_API_KEY", "sk_test_my_own")  # a developer's own key stays
    stripe_dev_keys(dev_env)
    assert env_value(dev_env, "STRIPE_API_KEY") == "sk_test_my_own"
    assert dev_env.read_text().count("STRIPE_WEBHOOK_SECRET=") == 1


def make_run_env(dev_env: Path, **overrides: str) -> dict[str, str]:
    """The environment honcho gives the sandbox: .env.defaults, then var/dev.env."""
    env: dict[str, str] = {}
    for path in (ROOT / ".env.defaults", dev_env):
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                env[name.strip()] = value.strip()
    return {**env, **overrides}


@pytest.mark.asyncio
async def test_make_runs_sandbox_serves_stripe_and_signs_events_for_the_gateway(
        tmp_path: Path) -> None:
    dev_env = tmp_path / "dev.env"
    dev_env.write_text("SWITCHBOARD_CREDENTIALS_KEY=k\nRASA_TOKEN=t\n")
    stripe_dev_keys(dev_env)
    with WebhookReceiver() as gateway:
        port = free_port()
        settings = Settings.from_env(make_run_env(
            dev_env, SANDBOX_HTTP_PORT=str(port), STRIPE_API_BASE=f"http://127.0.0.1:{port}",
            GATEWAY_PORT=gateway.base_url.rsplit(":", 1)[1], SWITCHBOARD_VAR_DIR=str(tmp_path)))
        assert settings.stripe_api_key is not None and settings.stripe_webhook_secret is not None
        app = create_app(tmp_path / "outbox.jsonl", stripe_sandbox(settings),
                         name=f"sandbox-{uuid.uuid4().hex[:8]}")
        async with serving(app, port=port):
            client = stripe.StripeClient(settings.stripe_api_key.reveal(),
                                         base_addresses={"api": settings.stripe_api_base},
                                         http_client=stripe.HTTPXClient())
            session = await client.v1.checkout.sessions.create_async({
                "mode": "subscription", "customer_email": "owner@demo.example",
                "line_items": [{"price": "price_sb_starter_monthly", "quantity": 1}],
                "success_url": "http://localhost:8080/app/billing",
                "cancel_url": "http://localhost:8080/app/billing"})
            assert session.url == f"http://127.0.0.1:{port}/stripe/checkout/{session.id}"
            # The sandbox signs and posts three events to the gateway before it answers the
            # click: seconds on a busy machine, past httpx's 5 s default.
            async with httpx.AsyncClient(timeout=30) as http:
                paid = await click(http, str(session.url), "Pay")
                assert paid.status_code == 303
                twilio = await http.post(
                    f"http://127.0.0.1:{port}/2010-04-01/Accounts/AC1/Messages.json",
                    data={"To": "+15550001", "From": "+15550002", "Body": "hi"})
                assert twilio.status_code == 201  # Twilio's route still answers beside Stripe's
    secret = settings.stripe_webhook_secret.reveal()
    events = [stripe.Webhook.construct_event(r.body.decode(), r.headers["stripe-signature"],
                                             secret) for r in gateway.requests]
    assert [r.path for r in gateway.requests] == ["/billing/stripe/webhook"] * 3
    assert [e.type for e in events] == [
        "checkout.session.completed", "customer.subscription.created", "invoice.paid"]
