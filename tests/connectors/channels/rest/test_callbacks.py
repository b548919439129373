"""The REST channel's reply callback: its credentials section is checked like the other
channels', and a callback is signed over timestamp and body, retried on 5xx, not on 4xx
(against a real local HTTP server)."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from connectors.channels import credentials_problems
from connectors.channels.rest.callbacks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackFailed,
    RestCallbacks,
)
from connectors.channels.rest.credentials import CallbackConfig, callback_of, check
from tests.connectors.handoff_stack import Sink

SECRET = "a-signing-secret-of-the-shop"


def test_the_section_is_optional_but_checked_when_present() -> None:
    assert credentials_problems({}) == []
    good = {"callback_url": "https://shop.example/replies", "signing_secret": SECRET}
    assert check(good) == [] and credentials_problems({"rest": good}) == []
    assert callback_of({"rest": good}) == CallbackConfig(good["callback_url"], SECRET)
    assert credentials_problems({"rest": {"callback_url": "ftp://shop.example/x",
                                          "signing_secret": "short"}}) == [
        "rest.callback_url must be an http(s) URL",
        "rest.signing_secret must have at least 16 characters"]
    assert check({}) == ["rest.callback_url is missing", "rest.signing_secret is missing"]
    assert callback_of({"rest": {"callback_url": "https://shop.example/replies"}}) is None
    assert SECRET not in repr(callback_of({"rest": good}))  # never in a log line


@pytest.mark.asyncio
async def test_signed_retried_on_5xx_and_final_on_4xx() -> None:
    with Sink() as shop:
        config = CallbackConfig(f"{shop.base_url}/replies", SECRET)
        async with httpx.AsyncClient() as client:
            callbacks = RestCallbacks(client, attempts=3, retry_wait=0.01)
            shop.fail_next(503, times=2)
            assert await callbacks.post(config, {"text": "hi"}) == 3
            last = shop.requests[-1]
            timestamp = last.headers[TIMESTAMP_HEADER.lower()]
            assert last.headers[SIGNATURE_HEADER.lower()] == "sha256=" + hmac.new(
                SECRET.encode(), f"{timestamp}.".encode() + last.body, hashlib.sha256).hexdigest()
            assert json.loads(last.body) == {"text": "hi"}

            shop.fail_next(410)
            with pytest.raises(CallbackFailed) as refused:
                await callbacks.post(config, {"text": "again"})
            assert (refused.value.status, refused.value.transient) == (410, False)
            assert len(shop.requests) == 4  # no retry of a refusal
