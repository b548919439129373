"""What a shop's `email` credentials section must hold, as the channel's check says it.

The gateway refuses a shop whose section fails the check (404 "not set up", test_routes.py);
the tenants CLI and the admin API show these same sentences to the person setting it up.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.channels import BY_NAME, credentials_problems, email
from connectors.channels.email.credentials import check

MAILGUN: dict[str, Any] = {
    "address": "support@shop.example", "inbound": "mailgun",
    "mailgun_signing_key": "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
    "smtp": {"host": "smtp.shop.example", "port": 587, "username": "support@shop.example",
             "password": "app-password"},
}
SENDGRID: dict[str, Any] = {
    "address": "help@shop.example", "inbound": "sendgrid",
    "sendgrid_public_key": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
    "smtp": {"host": "smtp.sendgrid.net"},
}


def without(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in section.items() if key not in keys}


@pytest.mark.parametrize("section", [MAILGUN, SENDGRID, {**MAILGUN, "sendgrid_public_key": ""},
                                     {**SENDGRID, "from_name": "Shop Help"},
                                     {**MAILGUN, "smtp": {"host": "smtp.shop.example",
                                                          "port": "465"}}],
                         ids=["mailgun", "sendgrid", "other-service-key-empty", "extra-fields",
                              "port-as-text"])
def test_complete_sections_pass(section: dict[str, Any]) -> None:
    assert check(section) == []
    assert email.CHANNEL.problems({"email": section}) == []
    assert credentials_problems({"email": section}) == []


@pytest.mark.parametrize(("section", "problems"), [
    (without(MAILGUN, "address"), ["email.address is missing"]),
    ({**MAILGUN, "address": ""}, ["email.address is missing"]),
    (without(MAILGUN, "inbound"), ["email.inbound is missing"]),
    ({**MAILGUN, "inbound": "postmark"}, ["email.inbound is 'mailgun' or 'sendgrid'"]),
    (without(MAILGUN, "smtp"), ["email.smtp is missing"]),
    ({**MAILGUN, "smtp": {}}, ["email.smtp is missing"]),
    ({**MAILGUN, "smtp": {"port": 587}}, ["email.smtp needs a host"]),
    ({**MAILGUN, "smtp": {"host": ""}}, ["email.smtp needs a host"]),
    ({**MAILGUN, "smtp": "smtp.shop.example"}, ["email.smtp needs a host"]),
    (without(MAILGUN, "mailgun_signing_key"),
     ["email via mailgun needs its signing key (email.mailgun_signing_key)"]),
    ({**SENDGRID, "sendgrid_public_key": ""},
     ["email via sendgrid needs its signing key (email.sendgrid_public_key)"]),
    # The other service's key does not stand in for this one's.
    ({**without(SENDGRID, "sendgrid_public_key"), "mailgun_signing_key": "key-x"},
     ["email via sendgrid needs its signing key (email.sendgrid_public_key)"]),
    # What would only fail later, where nobody sees it: mail to the shop refused as "not sent
    # to the shop's address", every reply failing to connect.
    ({**MAILGUN, "address": "not-an-address"},
     ["email.address must be one email address (support@shop.example)"]),
    ({**MAILGUN, "address": "Shop <support@shop.example>"},
     ["email.address must be one email address (support@shop.example)"]),
    ({**MAILGUN, "smtp": {"host": "smtp.shop.example", "port": "abc"}},
     ["email.smtp.port must be a port number (1-65535), e.g. 587"]),
    ({**MAILGUN, "smtp": {"host": "smtp.shop.example", "port": 99999}},
     ["email.smtp.port must be a port number (1-65535), e.g. 587"]),
], ids=["no-address", "empty-address", "no-inbound", "unknown-inbound", "no-smtp",
        "empty-smtp", "smtp-without-host", "smtp-empty-host", "smtp-not-a-section",
        "mailgun-without-key", "sendgrid-without-key", "sendgrid-with-mailgun-key",
        "address-not-an-address", "address-with-a-name", "port-not-a-number",
        "port-out-of-range"])
def test_each_missing_piece_is_named(section: dict[str, Any], problems: list[str]) -> None:
    assert check(section) == problems
    assert email.CHANNEL.problems({"email": section}) == problems


def test_everything_missing_is_said_at_once() -> None:
    assert check({"mailgun_signing_key": "key-x"}) == [
        "email.address is missing", "email.inbound is missing", "email.smtp is missing"]
    assert check({"inbound": "mailgun"}) == [
        "email.address is missing", "email.smtp is missing",
        "email via mailgun needs its signing key (email.mailgun_signing_key)"]


def test_a_shop_without_an_email_section_is_simply_not_on_email() -> None:
    assert email.CHANNEL.problems({}) == ["email is missing"]
    assert email.CHANNEL.problems({"email": {}}) == ["email is missing"]
    assert credentials_problems({}) == []  # not set up is not a mistake


def test_the_registry_knows_email_by_its_name_and_section() -> None:
    assert BY_NAME["email"] is email.CHANNEL
    assert email.CHANNEL.section == "email" and email.CHANNEL.sender is not None
    assert email.CHANNEL.url_prefix == "/channels/<tenant_slug:str>/email"
    assert credentials_problems({"email": without(MAILGUN, "smtp")}) == ["email.smtp is missing"]
