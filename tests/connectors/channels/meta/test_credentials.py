"""What a shop's `meta_whatsapp` credentials section must hold, said in plain words.

The registry's check is what the tenants CLI runs on a creds.json before it stores it, and what
the gateway runs before it accepts a webhook or a handshake (a section that fails it is "not
set up": 404, whichever secret is missing).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.channels import BY_NAME, credentials_problems
from connectors.channels.meta import CHANNEL, credentials
from connectors.errors import ChannelNotConfigured
from tests.connectors.channels.meta.harness import APP_SECRET, CREDENTIALS

# A creds.json as a shop hands it to `python -m tenants add` (README, Channels): its order
# backend and every channel it uses.
CREDS_JSON = """{
  "woocommerce": {"store_url": "https://shop.example", "consumer_key": "ck_x",
                  "consumer_secret": "cs_x"},
  "twilio": {"account_sid": "AC4f1d2e8b9c0a7f6e5d4c3b2a1908f7e6", "auth_token": "0f9e8d7c",
             "sms_numbers": ["+15550001111"]},
  "meta_whatsapp": {"app_secret": "3f1c0e8a9b7d4e2f8a6c5b4d3e2f1a0b",
                    "verify_token": "switchboard-verify-7d1e", "access_token": "EAAG-shop",
                    "phone_number_id": "106540352242922",
                    "template": {"name": "support_follow_up", "language": "en_US"}},
  "email": {"address": "support@shop.example", "inbound": "sendgrid",
            "sendgrid_public_key": "MFkw", "smtp": {"host": "smtp.example", "port": 587}}
}"""


def full_creds(**meta: Any) -> dict[str, Any]:
    """The creds.json above, its meta_whatsapp section changed by `meta` (None removes a key)."""
    creds: dict[str, Any] = json.loads(CREDS_JSON)
    section = {**creds["meta_whatsapp"], **meta}
    creds["meta_whatsapp"] = {key: value for key, value in section.items() if value is not None}
    return creds


def test_it_is_the_registrys_meta_entry_under_the_names_shops_already_use() -> None:
    assert BY_NAME["meta"] is CHANNEL
    assert CHANNEL.section == "meta_whatsapp"  # where shops stored their secrets
    assert CHANNEL.url_prefix.endswith("/whatsapp")  # the webhook URL configured at Meta
    assert CHANNEL.check_credentials is credentials.check


@pytest.mark.parametrize(
    "section",
    [CREDENTIALS, json.loads(CREDS_JSON)["meta_whatsapp"],
     {**CREDENTIALS, "phone_number_id": 106540352242922}],
    ids=["minimal", "with-template", "numeric-phone-number-id"],
)
def test_a_complete_section_passes(section: dict[str, Any]) -> None:
    assert credentials.check(section) == []
    assert CHANNEL.problems({"meta_whatsapp": section}) == []
    assert CHANNEL.section_of({"meta_whatsapp": section}) == section


@pytest.mark.parametrize("key", ["app_secret", "verify_token", "access_token",
                                 "phone_number_id"])
@pytest.mark.parametrize("absent", [None, ""], ids=["no-key", "empty"])
def test_a_missing_piece_is_named(key: str, absent: str | None) -> None:
    section = {k: v for k, v in CREDENTIALS.items() if k != key}
    if absent is not None:
        section[key] = absent
    assert credentials.check(section) == [f"meta_whatsapp.{key} is missing"]


@pytest.mark.parametrize("value", [{"id": "106540352242922"}, ["106540352242922"], True])
def test_a_value_that_is_not_a_string_is_named(value: Any) -> None:
    assert credentials.check({**CREDENTIALS, "phone_number_id": value}) == [
        "meta_whatsapp.phone_number_id must be a string"]


def test_every_problem_is_listed_at_once_and_no_secret_is_echoed() -> None:
    problems = credentials.check({"app_secret": APP_SECRET, "access_token": ["EAAG-x"]})
    assert problems == ["meta_whatsapp.verify_token is missing",
                        "meta_whatsapp.phone_number_id is missing",
                        "meta_whatsapp.access_token must be a string"]
    assert not any(secret in " ".join(problems) for secret in (APP_SECRET, "EAAG-x"))


@pytest.mark.parametrize("creds", [{}, {"meta_whatsapp": {}}, {"meta_whatsapp": None},
                                   {"meta": CREDENTIALS}],
                         ids=["absent", "empty", "null", "under-the-registry-name"])
def test_no_usable_section_is_the_channel_missing(creds: dict[str, Any]) -> None:
    assert CHANNEL.problems(creds) == ["meta_whatsapp is missing"]


@pytest.mark.parametrize("missing", ["app_secret", "verify_token"])
def test_a_section_without_its_secrets_is_not_set_up(missing: str) -> None:
    with pytest.raises(ChannelNotConfigured) as refused:
        CHANNEL.section_of({"meta_whatsapp": {**CREDENTIALS, missing: ""}})
    assert refused.value.status == 404
    assert refused.value.detail == "The WhatsApp Cloud API channel is not set up for this shop."


# -- the registry over a whole creds.json ------------------------------------------------------


def test_a_full_creds_json_passes_every_channels_check() -> None:
    assert credentials_problems(full_creds()) == []


def test_a_full_creds_json_with_an_incomplete_whatsapp_section_names_only_that() -> None:
    assert credentials_problems(full_creds(app_secret=None, verify_token="")) == [
        "meta_whatsapp.app_secret is missing", "meta_whatsapp.verify_token is missing"]


def test_a_shop_without_whatsapp_is_not_asked_for_it() -> None:
    creds = full_creds()
    del creds["meta_whatsapp"]
    assert credentials_problems(creds) == []
    assert credentials_problems({**creds, "meta_whatsapp": {}}) == ["meta_whatsapp is missing"]
