"""The channel registry lists every channel once, under one name each, and the gateway serves
exactly what it lists."""

from __future__ import annotations

from pathlib import Path

from connectors.app import create_app
from connectors.channels import BY_NAME, CHANNELS, credentials_problems
from core.settings import Settings

CHANNELS_DIR = Path(__file__).resolve().parents[3] / "connectors" / "channels"


def test_every_channel_folder_is_in_the_registry_once() -> None:
    folders = {p.name for p in CHANNELS_DIR.iterdir()
               if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders == set(BY_NAME) and len(BY_NAME) == len(CHANNELS)


def test_names_urls_and_credentials_sections_never_collide() -> None:
    for attribute in ("url_prefix", "section"):
        values = [getattr(channel, attribute) for channel in CHANNELS]
        assert len(values) == len(set(values)), attribute


def test_a_channel_answering_through_a_provider_says_what_credentials_it_needs() -> None:
    for channel in CHANNELS:
        assert (channel.sender is None) == (channel.check_credentials is None), channel.name


def test_the_gateway_mounts_every_channel_under_its_prefix() -> None:
    settings = Settings.from_env({"SWITCHBOARD_CREDENTIALS_KEY": "k", "RASA_TOKEN": "t"})
    app = create_app(settings, name="registry_test")
    paths = {route.path for route in app.router.routes}
    for channel in CHANNELS:
        assert any(f"/{channel.segment}/" in f"/{path}" for path in paths), channel.name
    # The URLs shops configured at their providers stay what they were.
    for path in ("channels/<tenant_slug:str>/twilio/messages",
                 "channels/<tenant_slug:str>/twilio/status",
                 "channels/<tenant_slug:str>/whatsapp/webhook",
                 "channels/<tenant_slug:str>/email/mailgun",
                 "channels/<tenant_slug:str>/email/sendgrid",
                 "channels/<tenant_slug:str>/rest/webhook",
                 "channels/<tenant_slug:str>/web/socket",
                 "channels/<tenant_slug:str>/web/widget.js"):
        assert path in paths, path


def test_credentials_problems_name_every_missing_piece_and_only_for_present_sections() -> None:
    assert credentials_problems({"shopify": {"shop_url": "x"}}) == []
    problems = credentials_problems({"twilio": {"account_sid": "AC1"},
                                     "meta_whatsapp": {"app_secret": "s"},
                                     "email": {"address": "help@shop.example"}})
    text = "; ".join(problems)
    for piece in ("twilio.auth_token", "sms_numbers or whatsapp_numbers",
                  "meta_whatsapp.verify_token", "meta_whatsapp.phone_number_id",
                  "email.inbound", "email.smtp"):
        assert piece in text, piece
