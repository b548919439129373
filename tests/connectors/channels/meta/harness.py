"""The shared channel harness, taught Meta's webhook: the verification handshake and bodies
signed like Meta signs them (HMAC-SHA256 of the raw body with the app secret, compact JSON;
tests/fakes/graph_server.py). Payloads are the captured fixtures in tests/fixtures/meta/.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.channels.meta import CHANNEL
from tests.connectors.channels.harness import ChannelHarness
from tests.fakes.graph_server import signed

APP_SECRET = "3f1c0e8a9b7d4e2f8a6c5b4d3e2f1a0b"
VERIFY_TOKEN = "switchboard-verify-7d1e"
ACCESS_TOKEN = "EAAG-test"
PHONE_NUMBER_ID = "106540352242922"
GRAPH_BASE = "http://graph.test"
CREDENTIALS: dict[str, Any] = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
                               "access_token": ACCESS_TOKEN, "phone_number_id": PHONE_NUMBER_ID}


class MetaHarness(ChannelHarness):
    def __init__(self, credentials: Mapping[str, Any] | None = CREDENTIALS,
                 **options: Any) -> None:
        options.setdefault("graph_api_url", GRAPH_BASE)
        super().__init__(CHANNEL, "meta", credentials, **options)

    @property
    def webhook(self) -> str:
        return self.url("webhook")

    async def handshake(self, slug: str | None = None, **params: str) -> Any:
        """Meta's GET to the webhook: `hub.mode`, `hub.verify_token`, `hub.challenge`."""
        return await self.get(self.url("webhook", slug=slug),
                              **{f"hub.{key}": value for key, value in params.items()})

    async def post_signed(self, payload: Any, app_secret: str = APP_SECRET) -> Any:
        """POST `payload` (JSON-able, or the raw body) signed like Meta signs it."""
        return await self.post(self.webhook, *signed(app_secret, payload))
