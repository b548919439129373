"""Local stand-ins for the providers' sending side, for `make run` (development only).

    python -m devtools.sandbox    # HTTP 127.0.0.1:8025 (Twilio Messages API, WhatsApp
                                  # Cloud API, Stripe), SMTP 127.0.0.1:2525
                                  # (SANDBOX_HTTP_PORT / SANDBOX_SMTP_PORT move them)

The demo shop's replies on SMS, WhatsApp and email land here instead of the real providers:
each is appended to var/sandbox/outbox.jsonl (what `python -m devtools.try_channel` reads)
and logged, and http://127.0.0.1:8025/ lists them, newest first, with their links clickable
(an invitation mail's, a password reset's). Twilio sends get signed "sent" and "delivered"
status callbacks, as Twilio does.
Stripe's API (/v1/...) and its Checkout and portal pages are devtools/stripe_sandbox: it
accepts STRIPE_API_KEY from var/dev.env and sends its signed events (STRIPE_WEBHOOK_SECRET) to
the gateway's POST /billing/stripe/webhook; the Prices are billing/plans.yml's (BILLING_PLANS).
Not for production: it accepts any Twilio, Meta or SMTP credentials.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import secrets
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sanic.response import html as html_response
from sanic.response import json as json_response
from twilio.request_validator import RequestValidator

from core import logs
from core.settings import Settings
from core.tasks import TaskSet
from devtools.stripe_sandbox import StripeSandbox, prices_from_plans
from devtools.stripe_sandbox.app import add_routes

log = logging.getLogger(__name__)


def outbox_path(var_dir: Path) -> Path:
    """Where the sandbox appends what it received, one JSON object a line."""
    return var_dir / "sandbox" / "outbox.jsonl"


def _append(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"at": time.time(), **entry}) + "\n")
    log.info("sandbox received", extra={k: v for k, v in entry.items() if k != "text"})


LINK = re.compile(r"https?://[^\s<>\"']+")
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox outbox</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; max-width: 60rem; }}
article {{ border-bottom: 1px solid #ddd; padding: .6rem 0; }}
header {{ color: #555; font-size: 13px; }} pre {{ white-space: pre-wrap; margin: .3rem 0; }}
</style></head><body><h1>Sandbox outbox</h1>
<p>What the shops sent through the sandbox (SMS, WhatsApp, email), newest first; the last
{limit}. The same lines are in <code>{path}</code>.</p>
{entries}</body></html>"""


def outbox_page(outbox: Path, limit: int = 200) -> str:
    """The latest `limit` sends as a page: who, when, what, links clickable."""
    lines = outbox.read_text(encoding="utf-8").splitlines() if outbox.exists() else []
    entries = []
    for line in reversed(lines[-limit:]):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.get("at", 0)))
        said = html.escape(str(entry.get("text") or ""))
        said = LINK.sub(lambda m: f'<a href="{m[0]}">{m[0]}</a>', said)
        subject = f" · {html.escape(entry['subject'])}" if entry.get("subject") else ""
        entries.append(
            f"<article><header>{when} · {html.escape(str(entry.get('provider')))} · from "
            f"{html.escape(str(entry.get('from')))} to {html.escape(str(entry.get('to')))}"
            f"{subject}</header><pre>{said}</pre></article>")
    return PAGE.format(limit=limit, path=html.escape(str(outbox)),
                       entries="\n".join(entries) or "<p>Nothing sent yet.</p>")


def stripe_sandbox(settings: Settings) -> StripeSandbox:
    """Stripe as `make run` configures it: the dev key, the dev pricing's Prices, events to
    the gateway on this machine (none without STRIPE_WEBHOOK_SECRET)."""
    secret = settings.stripe_webhook_secret
    return StripeSandbox(
        settings.stripe_api_key.reveal() if settings.stripe_api_key else None,
        prices_from_plans(settings.billing_plans),
        f"http://127.0.0.1:{settings.sandbox_http_port}",
        webhook_url=f"http://127.0.0.1:{settings.gateway_port}/billing/stripe/webhook",
        webhook_secret=secret.reveal().split(",")[0] if secret else None)


def create_app(outbox: Path, stripe: StripeSandbox | None = None,
               name: str = "switchboard-sandbox") -> Sanic:
    app = Sanic(name, configure_logging=False)
    if stripe is not None:
        add_routes(app, stripe)
    callbacks = TaskSet()

    @app.get("/")
    async def outbox_listing(request: Request) -> HTTPResponse:
        return html_response(outbox_page(outbox))

    async def status_callbacks(url: str, token: str, form: dict[str, str]) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            for status in ("sent", "delivered"):
                await asyncio.sleep(0.2)
                params = {**form, "MessageStatus": status, "SmsStatus": status}
                signature = RequestValidator(token).compute_signature(url, params)
                try:
                    await http.post(url, data=params, headers={"X-Twilio-Signature": signature})
                except httpx.HTTPError:
                    return

    @app.post("/2010-04-01/Accounts/<account_sid:str>/Messages.json")
    async def twilio_send(request: Request, account_sid: str) -> HTTPResponse:
        form = {k: v[0] for k, v in (request.form or {}).items()}
        sid = "SM" + secrets.token_hex(16)
        _append(outbox, {"provider": "twilio", "to": form.get("To"), "from": form.get("From"),
                         "text": form.get("Body", ""), "sid": sid})
        if form.get("StatusCallback") and request.credentials:
            callback = {"MessageSid": sid, "SmsSid": sid, "AccountSid": account_sid,
                        "From": form.get("From", ""), "To": form.get("To", ""),
                        "ApiVersion": "2010-04-01"}
            callbacks.spawn(status_callbacks(
                form["StatusCallback"], request.credentials.password or "", callback))
        return json_response({"sid": sid, "status": "queued", "to": form.get("To"),
                              "from": form.get("From"), "body": form.get("Body"),
                              "account_sid": account_sid, "num_segments": "1"}, status=201)

    @app.post("/<version:str>/<phone_number_id:str>/messages")
    async def whatsapp_send(request: Request, version: str, phone_number_id: str) -> HTTPResponse:
        body = request.json or {}
        wamid = "wamid.HBgL" + secrets.token_hex(20).upper()
        text = (body.get("text") or {}).get("body") or json.dumps(body.get("template"))
        _append(outbox, {"provider": "meta", "to": body.get("to"), "from": phone_number_id,
                         "text": text, "wamid": wamid})
        return json_response({"messaging_product": "whatsapp",
                              "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
                              "messages": [{"id": wamid}]})

    return app


class _MailHandler:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        part = message.get_body(preferencelist=("plain",))
        _append(self.outbox, {
            "provider": "smtp", "to": ", ".join(envelope.rcpt_tos), "from": envelope.mail_from,
            "subject": message["Subject"], "message_id": message["Message-ID"],
            "in_reply_to": message["In-Reply-To"], "text": part.get_content() if part else ""})
        return "250 Message accepted for delivery"


def main() -> None:
    from aiosmtpd.controller import Controller  # a development dependency, like this module

    settings = Settings.from_env()  # honcho loads var/dev.env: the Stripe keys are there
    logs.configure(settings.log_level)
    outbox = outbox_path(settings.var_dir)
    smtp = Controller(_MailHandler(outbox), hostname="127.0.0.1", port=settings.sandbox_smtp_port)
    smtp.start()
    try:
        app = create_app(outbox, stripe_sandbox(settings))
        app.run(host="127.0.0.1", port=settings.sandbox_http_port, single_process=True,
                access_log=False, motd=False)
    finally:
        smtp.stop()


if __name__ == "__main__":
    main()
