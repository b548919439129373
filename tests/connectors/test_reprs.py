"""Objects that hold keys or a visitor's address keep them out of their reprs (a repr reaches
logs through tracebacks, debuggers and f-strings)."""

from __future__ import annotations

import pytest

from connectors.channels.contract import ChannelSettings
from connectors.outbound import OutboundContext
from connectors.rasa_client import RasaClient
from core.settings import Secret
from tenants.crypto import CredentialsBox
from tests.connectors.channels.harness import shop


def test_channel_settings_hide_the_widget_secret() -> None:
    secret = b"widget-secret-0123456789abcdef!!"
    shown = repr(ChannelSettings(widget_secret=secret, public_base_url="https://bot.example"))
    assert "widget-secret" not in shown and secret.hex() not in shown
    assert "https://bot.example" in shown


def test_outbound_context_hides_credentials_and_the_visitor() -> None:
    context = OutboundContext(tenant=shop(), credentials={"auth_token": "twilio-secret-1"},
                              to="+4915112345678",
                              reply_context={"from": "whatsapp:+4915112345678"})
    shown = repr(context)
    assert "twilio-secret-1" not in shown and "15112345678" not in shown


@pytest.mark.asyncio
async def test_rasa_client_and_credentials_box_hide_their_keys() -> None:
    client = RasaClient("http://127.0.0.1:9", Secret("jwt-key-2"), 1.0, "http://127.0.0.1:9")
    try:
        assert "jwt-key-2" not in repr(client) and "jwt-key-2" not in repr(vars(client))
    finally:
        await client.aclose()
    key = CredentialsBox.generate_key()
    assert key not in repr(CredentialsBox(key)) and key not in repr(vars(CredentialsBox(key)))
