"""Visitor tokens: only the gateway can mint one, and it only opens its own conversation."""

from __future__ import annotations

import time

import pytest

from connectors.channels.web import tokens as vt

SECRET = b"s" * 32
SHOP = "7d3c1a52-8a1e-4c4b-9f0e-5d2a6b3c0001"
OTHER_SHOP = "0b1e7c1e-1111-4c4b-9f0e-5d2a6b3c0002"


def test_round_trip_gives_back_the_conversation() -> None:
    token, conversation = vt.issue(SECRET, SHOP)
    assert len(conversation) == 32 and conversation in token
    assert vt.verify(SECRET, SHOP, token) == conversation


def test_each_new_conversation_is_distinct() -> None:
    conversations = {vt.issue(SECRET, SHOP)[1] for _ in range(50)}
    assert len(conversations) == 50


def test_reissuing_keeps_the_conversation_and_pushes_the_expiry() -> None:
    old, conversation = vt.issue(SECRET, SHOP, ttl_days=1, now=time.time() - 3600)
    new, same = vt.issue(SECRET, SHOP, conversation)
    assert same == conversation and new != old
    assert vt.verify(SECRET, SHOP, new, now=time.time() + 20 * 86400) == conversation


def test_token_is_url_safe() -> None:
    token, _ = vt.issue(SECRET, SHOP)
    assert all(c.isalnum() or c in "._-" for c in token)


def test_another_conversation_id_with_my_signature_is_refused() -> None:
    token, _ = vt.issue(SECRET, SHOP)
    _, other = vt.issue(SECRET, SHOP)
    version, _, expiry, signature = token.split(".")
    with pytest.raises(vt.BadSignature):
        vt.verify(SECRET, SHOP, ".".join((version, other, expiry, signature)))


def test_later_expiry_with_my_signature_is_refused() -> None:
    token, conversation = vt.issue(SECRET, SHOP)
    version, _, expiry, signature = token.split(".")
    with pytest.raises(vt.BadSignature):
        vt.verify(SECRET, SHOP,
                  ".".join((version, conversation, str(int(expiry) + 10**6), signature)))


@pytest.mark.parametrize("position", [0, 10, -1])
def test_altered_signature_is_refused(position: int) -> None:
    token, _ = vt.issue(SECRET, SHOP)
    head, signature = token.rsplit(".", 1)
    flipped = "A" if signature[position] != "A" else "B"
    chars = list(signature)
    chars[position] = flipped
    with pytest.raises(vt.BadSignature):
        vt.verify(SECRET, SHOP, f"{head}.{''.join(chars)}")


def test_token_signed_with_another_secret_is_refused() -> None:
    forged, _ = vt.issue(b"not-the-gateway-secret", SHOP)
    with pytest.raises(vt.BadSignature):
        vt.verify(SECRET, SHOP, forged)


def test_another_shops_token_is_refused() -> None:
    token, _ = vt.issue(SECRET, OTHER_SHOP)
    with pytest.raises(vt.InvalidToken):
        vt.verify(SECRET, SHOP, token)


def test_expired_token_is_refused() -> None:
    token, _ = vt.issue(SECRET, SHOP, ttl_days=1, now=time.time() - 2 * 86400)
    with pytest.raises(vt.ExpiredToken):
        vt.verify(SECRET, SHOP, token)


def test_expired_forgery_is_a_bad_signature_not_an_expiry() -> None:
    forged, _ = vt.issue(b"other", SHOP, ttl_days=1, now=time.time() - 2 * 86400)
    with pytest.raises(vt.BadSignature):
        vt.verify(SECRET, SHOP, forged)


@pytest.mark.parametrize(
    "token",
    [None, "", 42, "v1", "v1.abc", "v2.abc.123.sig", "v1.abc.12x.sig", "v1.a b.123.sig",
     "v1..123.sig", "v1.abc.123.sig.extra", "v1." + "a" * 300 + ".1.s", "v1.abc.123.sïg"],
)
def test_malformed_tokens_are_refused_with_a_typed_error(token: object) -> None:
    with pytest.raises(vt.InvalidToken):
        vt.verify(SECRET, SHOP, token)


def test_issue_rejects_an_unusable_conversation_id_or_secret() -> None:
    with pytest.raises(ValueError):
        vt.issue(SECRET, SHOP, "has.dots")
    with pytest.raises(ValueError):
        vt.issue(b"", SHOP)
