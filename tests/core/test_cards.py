"""Card numbers typed into a chat are masked; order and tracking numbers are not."""

from __future__ import annotations

import pytest

from core.cards import luhn_valid, mask, mask_values


@pytest.mark.parametrize("typed", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
    "378282246310005",  # American Express, 15 digits
    "6011 0009 9013 9424",  # Discover
    "30569309025904",  # Diners Club, 14 digits
    "4111.1111.1111.1111", "4111  1111  1111  1111", "4111\u00a01111\u00a01111\u00a01111",
    "4111/1111/1111/1111", "4111\u20131111\u20131111\u20131111",  # the second walk's forms
])
def test_a_card_number_keeps_only_its_last_four_digits(typed: str) -> None:
    masked = mask(f"my card is {typed}, why was it charged twice?")
    assert masked == f"my card is **** **** **** {typed[-4:]}, why was it charged twice?"


@pytest.mark.parametrize("text", [
    "where is order #1001?", "purchase 5566778899 where is it", "order no 20230045566",
    "tracking 1Z999AA10123456784", "4111 1111 1111 1112",  # one digit off: no card
    "call me on +49 151 1234 5678", "invoice INV-4111111111111111",
])
def test_what_is_no_card_number_stays_as_typed(text: str) -> None:
    assert mask(text) == text


def test_luhn() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


def test_the_security_code_and_expiry_named_beside_it_are_hidden() -> None:
    typed = ("card 4111 1111 1111 1111 exp 12/29 cvv 123, valid thru 03-2027, CVC: 0421, "
             "the CVV is 777")
    assert mask(typed) == ("card **** **** **** 1111 exp **/** cvv ***, valid thru **/**, "
                           "CVC: ***, the CVV is ***")
    assert mask("I ordered 123 items on 12/29") == "I ordered 123 items on 12/29"


def test_values_are_masked_at_any_depth_except_under_the_keys_kept() -> None:
    card = "4111 1111 1111 1111"
    value = {"subject": f"charged on {card}", "nested": {"list": [f"card {card}", 7, None]},
             "pair": (card, "x"), "media_ids": ["4111111111111111"], "count": 3}
    assert mask_values(value, keep={"media_ids"}) == {
        "subject": "charged on **** **** **** 1111",
        "nested": {"list": ["card **** **** **** 1111", 7, None]},
        "pair": ("**** **** **** 1111", "x"), "media_ids": ["4111111111111111"], "count": 3}
    assert mask_values(f"only {card}") == "only **** **** **** 1111"
