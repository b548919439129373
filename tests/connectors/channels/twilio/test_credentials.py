"""What a shop's `twilio` credentials section must hold, said in plain words.

The registry's check is what the tenants CLI runs on a creds.json before it stores it, and what
the gateway runs before it accepts a webhook (a section that fails it is "not set up": 404).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.channels import BY_NAME, credentials_problems
from connectors.channels.twilio import CHANNEL, credentials
from connectors.errors import ChannelNotConfigured
from tests.connectors.channels.twilio.harness import ACCOUNT, CREDENTIALS, TOKEN

# A creds.json as a shop hands it to `python -m tenants add` (README, Channels): its order
# backend and every channel it uses.
CREDS_JSON = """{
  "shopify": {"shop_url": "https://corner-shop.myshopify.com", "access_token": "shpat_x"},
  "twilio": {"account_sid": "AC4f1d2e8b9c0a7f6e5d4c3b2a1908f7e6",
             "auth_token": "0f9e8d7c6b5a49382716a5b4c3d2e1f0",
             "sms_numbers": ["+15550001111"], "whatsapp_numbers": ["+15550002222"],
             "whatsapp_template": {"content_sid": "HXb5b62575e6e4ff6129ad7c8efe1f983e"}},
  "meta_whatsapp": {"app_secret": "3f1c0e8a", "verify_token": "switchboard-verify",
                    "access_token": "EAAG-shop", "phone_number_id": "106540352242922",
                    "template": {"name": "support_follow_up", "language": "en_US"}},
  "email": {"address": "support@corner-shop.example", "inbound": "mailgun",
            "mailgun_signing_key": "key-3ax6", "smtp": {"host": "smtp.example", "port": 587}}
}"""


def full_creds(**twilio: Any) -> dict[str, Any]:
    """The creds.json above, its twilio section changed by `twilio` (None removes a key)."""
    creds: dict[str, Any] = json.loads(CREDS_JSON)
    section = {**creds["twilio"], **twilio}
    creds["twilio"] = {key: value for key, value in section.items() if value is not None}
    return creds


def test_it_is_the_registrys_twilio_entry() -> None:
    assert BY_NAME["twilio"] is CHANNEL
    assert CHANNEL.section == "twilio"
    assert CHANNEL.check_credentials is credentials.check


@pytest.mark.parametrize(
    "section",
    [
        CREDENTIALS,
        {"account_sid": ACCOUNT, "auth_token": TOKEN, "sms_numbers": ["+15550001111"]},
        {"account_sid": ACCOUNT, "auth_token": TOKEN, "whatsapp_numbers": ["+15550002222"]},
        json.loads(CREDS_JSON)["twilio"],
    ],
    ids=["both-channels", "sms-only", "whatsapp-only", "with-template"],
)
def test_a_complete_section_passes(section: dict[str, Any]) -> None:
    assert credentials.check(section) == []
    assert CHANNEL.problems({"twilio": section}) == []
    assert CHANNEL.section_of({"twilio": section}) == section


@pytest.mark.parametrize("key", ["account_sid", "auth_token"])
@pytest.mark.parametrize("absent", [None, ""], ids=["no-key", "empty"])
def test_a_missing_secret_is_named(key: str, absent: str | None) -> None:
    section = {k: v for k, v in CREDENTIALS.items() if k != key}
    if absent is not None:
        section[key] = absent
    assert credentials.check(section) == [f"twilio.{key} is missing"]


def test_a_shop_without_any_number_is_told_which_lists_to_fill() -> None:
    section = {"account_sid": ACCOUNT, "auth_token": TOKEN, "sms_numbers": []}
    assert credentials.check(section) == ["twilio needs sms_numbers or whatsapp_numbers"]


@pytest.mark.parametrize("numbers", ["+15550001111", ["+15550001111", 15550003333],
                                     {"main": "+15550001111"}])
def test_numbers_must_be_a_list_of_phone_numbers(numbers: Any) -> None:
    assert credentials.check({**CREDENTIALS, "sms_numbers": numbers}) == [
        f"twilio.sms_numbers {credentials.NUMBERS}"]


@pytest.mark.parametrize("numbers", [["hello world"], ["+1"], ["+15550001111", "call us"],
                                     ["555-0100 1234"]])  # no country code: Twilio says +1…
def test_numbers_must_look_like_phone_numbers(numbers: list[str]) -> None:
    assert credentials.check({**CREDENTIALS, "sms_numbers": numbers}) == [
        f"twilio.sms_numbers {credentials.NUMBERS}"]


def test_numbers_may_be_written_as_people_write_them() -> None:
    section = {**CREDENTIALS, "sms_numbers": ["+1 (555) 000-1111"],
               "whatsapp_numbers": ["whatsapp:+15550002222"]}
    assert credentials.check(section) == []


def test_the_account_sid_is_twilios() -> None:
    assert credentials.check({**CREDENTIALS, "account_sid": "nope"}) == [
        "twilio.account_sid is the Account SID from Twilio's console (AC…)"]


def test_every_problem_is_listed_at_once_and_no_value_is_echoed() -> None:
    section = {"account_sid": "", "auth_token": "", "whatsapp_numbers": "+15550002222"}
    problems = credentials.check(section)
    assert problems == ["twilio.account_sid is missing", "twilio.auth_token is missing",
                        f"twilio.whatsapp_numbers {credentials.NUMBERS}"]
    assert "+15550002222" not in " ".join(problems)


@pytest.mark.parametrize("creds", [{}, {"twilio": {}}, {"twilio": None}, {"twilio": "AC1:tok"}],
                         ids=["absent", "empty", "null", "not-a-section"])
def test_no_usable_section_is_the_channel_missing(creds: dict[str, Any]) -> None:
    assert CHANNEL.problems(creds) == ["twilio is missing"]


@pytest.mark.parametrize("creds", [{}, {"twilio": {**CREDENTIALS, "auth_token": ""}}],
                         ids=["absent", "no-auth-token"])
def test_a_section_that_fails_the_check_is_not_set_up(creds: dict[str, Any]) -> None:
    with pytest.raises(ChannelNotConfigured) as refused:
        CHANNEL.section_of(creds)
    assert refused.value.status == 404
    assert refused.value.detail == "The Twilio channel is not set up for this shop."
    assert TOKEN not in refused.value.detail


# -- the registry over a whole creds.json ------------------------------------------------------


def test_a_full_creds_json_passes_every_channels_check() -> None:
    assert credentials_problems(full_creds()) == []


def test_a_full_creds_json_with_an_incomplete_twilio_section_names_only_that() -> None:
    assert credentials_problems(full_creds(auth_token=None)) == ["twilio.auth_token is missing"]
    assert credentials_problems(full_creds(sms_numbers=None, whatsapp_numbers=None)) == [
        "twilio needs sms_numbers or whatsapp_numbers"]


def test_a_shop_without_twilio_is_not_asked_for_it() -> None:
    creds = full_creds()
    del creds["twilio"]
    assert credentials_problems(creds) == []
    assert credentials_problems({**creds, "twilio": {}}) == ["twilio is missing"]
