"""Try the demo shop's channels locally: sign and post a provider-shaped webhook, print the reply.

    .venv/bin/python -m devtools.try_channel sms "where is my order?"
    .venv/bin/python -m devtools.try_channel whatsapp "1001"          # Twilio's WhatsApp
    .venv/bin/python -m devtools.try_channel meta "do you ship to canada?"   # WhatsApp Cloud API
    .venv/bin/python -m devtools.try_channel email "Do you ship to Canada? Can I pay with PayPal?"

Needs `make run` (gateway + sandbox). The visitor is +15557654321 / visitor@example.net unless
--sender says otherwise; replies are read from the sandbox's outbox (var/sandbox/outbox.jsonl).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx

from core.db import create_engine, session_factory
from core.settings import ProcessSettings, Settings
from devtools import simulate
from devtools.bootstrap import load_dev_env
from devtools.sandbox import outbox_path
from tenants.crypto import CredentialsBox
from tenants.resolver import TenantResolver

DEFAULT_SENDER = {"sms": "+15557654321", "whatsapp": "+15557654321", "meta": "+15557654321",
                  "email": "visitor@example.net"}


async def _credentials(settings: Settings, slug: str) -> dict:
    engine = create_engine(settings.database_url)
    try:
        tenant = await TenantResolver(session_factory(engine)).get(slug)
    finally:
        await engine.dispose()
    return CredentialsBox(settings.credentials_key.reveal()).open(tenant.credentials_encrypted)


def build(channel: str, gateway: str, slug: str, creds: dict, sender: str,
          text: str) -> simulate.SignedRequest:
    if channel in ("sms", "whatsapp"):
        return simulate.twilio_message(gateway, slug, creds["twilio"], sender, text,
                                       whatsapp=channel == "whatsapp")
    if channel == "meta":
        return simulate.meta_message(gateway, slug, creds["meta_whatsapp"], sender, text)
    return simulate.mailgun_message(gateway, slug, creds["email"], sender, "A question", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("channel", choices=["sms", "whatsapp", "meta", "email"])
    parser.add_argument("text")
    parser.add_argument("--sender")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the reply")
    args = parser.parse_args()
    load_dev_env(ProcessSettings.from_env().var_dir / "dev.env")
    settings = Settings.from_env()
    sender = args.sender or DEFAULT_SENDER[args.channel]
    creds = asyncio.run(_credentials(settings, args.tenant))
    request = build(args.channel, args.gateway, args.tenant, creds, sender, args.text)
    outbox = outbox_path(settings.var_dir)
    start = outbox.stat().st_size if outbox.exists() else 0
    response = httpx.post(request.url, content=request.body, headers=request.headers, timeout=10)
    print(f"webhook answered {response.status_code} {response.text[:200]}")
    if response.status_code != 200:
        sys.exit(1)
    wanted = sender.lstrip("+")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if outbox.exists() and outbox.stat().st_size > start:
            with outbox.open(encoding="utf-8") as lines:
                lines.seek(start)
                for line in lines:
                    entry = json.loads(line)
                    if wanted in (entry.get("to") or ""):
                        print(f"\n{entry['provider']} → {entry['to']}:\n{entry['text']}")
                        return
        time.sleep(0.3)
    print("no reply within the wait; see the gateway's log (make run's output)")
    sys.exit(1)


if __name__ == "__main__":
    main()
