"""The shared channel harness, taught Twilio's forms and signatures.

Payloads are the captured-format fixtures in tests/fixtures/twilio/ (form bodies as Twilio
posts them), with some values replaced where a test needs it, signed with Twilio's real
algorithm (twilio's `RequestValidator.compute_signature`) over the public URL the gateway is
reached at: by default the shop sits behind a proxy at PUBLIC, so PUBLIC_BASE_URL is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from twilio.request_validator import RequestValidator

from connectors.channels.twilio import CHANNEL
from tests.connectors.channels.harness import ChannelHarness, shop

PUBLIC = "https://bot.shop-support.example"
SLUG = "corner-shop"
ACCOUNT = "AC4f1d2e8b9c0a7f6e5d4c3b2a1908f7e6"
TOKEN = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
SHOP_SMS = "+15550001111"
SHOP_WHATSAPP = "+15550002222"
CREDENTIALS: dict[str, Any] = {
    "account_sid": ACCOUNT,
    "auth_token": TOKEN,
    "sms_numbers": [SHOP_SMS],
    "whatsapp_numbers": [SHOP_WHATSAPP],
}
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

Form = list[tuple[str, str]]


class TwilioHarness(ChannelHarness):
    def __init__(self, credentials: Mapping[str, Any] | None = CREDENTIALS, *,
                 public_base_url: str | None = PUBLIC, **options: Any) -> None:
        options.setdefault("tenant", shop(SLUG, name="Corner Shop"))
        super().__init__(CHANNEL, "twilio", credentials, public_base_url=public_base_url,
                         **options)

    @property
    def messages(self) -> str:
        return self.url("messages")

    @property
    def status(self) -> str:
        return self.url("status")

    def form(self, name: str, **replace: str) -> Form:
        """A captured payload's fields in Twilio's order, with some values replaced."""
        pairs = parse_qsl(self.fixture_text(name), keep_blank_values=True)
        return [(key, replace.get(key, value)) for key, value in pairs]

    @staticmethod
    def signed(url: str, form: Form, token: str = TOKEN) -> tuple[bytes, dict[str, str]]:
        """The body and headers Twilio sends when it posts `form` to `url`."""
        signature = RequestValidator(token).compute_signature(url, dict(form))
        return urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }

    async def post_signed(self, path: str, form: Form, token: str = TOKEN) -> Any:
        """POST `form` to `path`, signed over the public URL like Twilio signs it."""
        return await self.post(path, *self.signed(f"{PUBLIC}{path}", form, token))
