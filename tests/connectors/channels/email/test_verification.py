"""Email signatures, and Mailgun's signed tokens used once (connectors/replay.py ReplayGuard).

The routes' tests (test_routes.py) post whole webhooks; these pin the checks themselves: what a
signature covers, the freshness window, and what the replay guard remembers, in-process and in
Redis (when TEST_REDIS_URL names the tests' own database).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from redis.asyncio import Redis

from connectors.channels.email.verification import (
    MAX_PARTS_SCANNED,
    MAX_SIGNED_FIELD,
    MAX_SKEW_SECONDS,
    TOKEN_TTL_SECONDS,
    mailgun_signed_fields,
    token_fits,
    verify_mailgun,
    verify_sendgrid,
)
from connectors.errors import Forbidden
from connectors.replay import ReplayGuard
from tests.conftest import services

KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
NOW = 1_717_409_565


def mailgun_signature(timestamp: str, token: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


# --- Mailgun signature -----------------------------------------------------------------------


def test_mailgun_signature_over_timestamp_and_token_passes() -> None:
    token = "t" * 50
    verify_mailgun(KEY, str(NOW), token, mailgun_signature(str(NOW), token), now=NOW)
    # Mailgun sends lower-case hex; surrounding whitespace or upper case still compare equal.
    verify_mailgun(KEY, str(NOW), token, f" {mailgun_signature(str(NOW), token).upper()} ",
                   now=NOW)


@pytest.mark.parametrize("skew", [MAX_SKEW_SECONDS, -MAX_SKEW_SECONDS])
def test_mailgun_signature_at_the_edge_of_the_window_passes(skew: int) -> None:
    timestamp = str(NOW - skew)
    verify_mailgun(KEY, timestamp, "tok", mailgun_signature(timestamp, "tok"), now=NOW)


@pytest.mark.parametrize(("key", "timestamp", "token", "signature", "reason"), [
    ("", str(NOW), "tok", mailgun_signature(str(NOW), "tok"), "not set up"),
    (KEY, "", "tok", mailgun_signature("", "tok"), "Missing"),
    (KEY, str(NOW), "", mailgun_signature(str(NOW), ""), "Missing"),
    (KEY, str(NOW), "tok", "", "Missing"),
    (KEY, "yesterday", "tok", mailgun_signature("yesterday", "tok"), "timestamp"),
    (KEY, str(NOW - MAX_SKEW_SECONDS - 1), "tok",
     mailgun_signature(str(NOW - MAX_SKEW_SECONDS - 1), "tok"), "Stale"),
    (KEY, str(NOW + MAX_SKEW_SECONDS + 1), "tok",
     mailgun_signature(str(NOW + MAX_SKEW_SECONDS + 1), "tok"), "Stale"),
    (KEY, str(NOW), "tok", mailgun_signature(str(NOW), "tok", key="key-other"), "Bad"),
    (KEY, str(NOW), "tok2", mailgun_signature(str(NOW), "tok"), "Bad"),
    (KEY, str(NOW), "tok", "0" * 64, "Bad"),
], ids=["no-key", "no-timestamp", "no-token", "no-signature", "unreadable-timestamp", "stale",
        "future", "other-key", "other-token", "zeros"])
def test_mailgun_bad_signatures_are_forbidden(key: str, timestamp: str, token: str,
                                              signature: str, reason: str) -> None:
    with pytest.raises(Forbidden) as refused:
        verify_mailgun(key, timestamp, token, signature, now=NOW)
    assert reason in refused.value.detail
    assert refused.value.status == 403


# --- SendGrid signature ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_b64(private: ec.EllipticCurvePrivateKey) -> str:
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sendgrid_signature(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    return base64.b64encode(
        private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.mark.parametrize("body", [b"--xYzZY\r\ntext\r\n--xYzZY--", b"\xff\xd8\xff\xe0 not utf-8"],
                         ids=["utf8", "binary"])
def test_sendgrid_signature_over_timestamp_and_raw_body_passes(
        private_key: ec.EllipticCurvePrivateKey, body: bytes) -> None:
    signature = sendgrid_signature(private_key, body, "1717409565")
    verify_sendgrid(public_b64(private_key), body, signature, "1717409565")


@pytest.mark.parametrize("case", ["no-key", "no-signature", "no-timestamp", "other-timestamp",
                                  "other-body", "binary-other-body", "unreadable-key",
                                  "not-base64"])
def test_sendgrid_bad_signatures_are_forbidden(private_key: ec.EllipticCurvePrivateKey,
                                               case: str) -> None:
    body, binary, ts = b"field=value", b"\xff\xd8 binary", "1717409565"
    good, good_binary = (sendgrid_signature(private_key, body, ts),
                         sendgrid_signature(private_key, binary, ts))
    key = public_b64(private_key)
    args: tuple[str, bytes, str | None, str | None] = {
        "no-key": ("", body, good, ts),
        "no-signature": (key, body, None, ts),
        "no-timestamp": (key, body, good, None),
        "other-timestamp": (key, body, good, "1717409566"),
        "other-body": (key, b"field=other", good, ts),
        "binary-other-body": (key, binary + b"!", good_binary, ts),
        "unreadable-key": ("bm90IGEga2V5", body, good, ts),
        "not-base64": (key, body, "not base64 at all!", ts),
    }[case]
    with pytest.raises(Forbidden) as refused:
        verify_sendgrid(*args)
    assert refused.value.status == 403 and refused.value.detail


# --- tokens used once ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_replay_guard_in_process_same_content_again_is_a_redelivery() -> None:
    guard = ReplayGuard()
    assert await guard.first_use("mailgun:a", "mail-1", 600)
    assert await guard.first_use("mailgun:a", "mail-1", 600)  # Mailgun retried: fine
    assert not await guard.first_use("mailgun:a", "forged", 600)
    assert await guard.first_use("mailgun:b", "forged", 600)  # another token is its own
    assert await guard.first_use("mailgun:a", "mail-1", 600)  # the forgery did not replace it


@pytest.mark.asyncio
async def test_replay_guard_in_process_forgets_a_token_after_its_ttl() -> None:
    clock = Clock()
    guard = ReplayGuard(clock=clock)
    assert await guard.first_use("mailgun:a", "mail-1", 600)
    clock.now += 599
    assert not await guard.first_use("mailgun:a", "forged", 600)
    clock.now += 2
    assert await guard.first_use("mailgun:a", "forged", 600)  # signature long stale by now


@pytest.mark.asyncio
async def test_replay_guard_in_process_keeps_live_tokens_when_it_prunes() -> None:
    clock = Clock()
    guard = ReplayGuard(clock=clock)
    assert await guard.first_use("live", "mine", 10_000)
    for index in range(1001):
        assert await guard.first_use(f"old-{index}", "x", 1)
    clock.now += 5
    assert await guard.first_use("trigger", "x", 1)  # over 1000 entries: the expired go
    assert not await guard.first_use("live", "forged", 10_000)


@pytest.mark.asyncio
async def test_token_fits_binds_the_token_to_the_whole_form() -> None:
    guard = ReplayGuard()
    form = {"token": "t1", "timestamp": str(NOW), "body-plain": "Where is #1001?"}
    assert await token_fits(guard, "t1", form)
    assert await token_fits(guard, "t1", dict(reversed(list(form.items()))))  # order is moot
    assert not await token_fits(guard, "t1", {**form, "body-plain": "Refund #1002 to me"})
    assert not await token_fits(guard, "t1", {**form, "recipient": "other@shop.example"})
    assert await token_fits(guard, "t2", {**form, "body-plain": "Refund #1002 to me"})


@pytest_asyncio.fixture(params=[False, True], ids=["bytes", "decoded"])
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    url = services()["redis_url"]
    if not url:
        pytest.skip("Redis not configured (TEST_REDIS_URL, e.g. redis://127.0.0.1:6379/6)")
    client = Redis.from_url(url, decode_responses=request.param)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_replay_guard_in_redis_is_shared_by_gateway_processes(redis: Redis) -> None:
    one, other = ReplayGuard(redis), ReplayGuard(redis)
    key = f"mailgun:{uuid.uuid4().hex}"
    assert await one.first_use(key, "mail-1", TOKEN_TTL_SECONDS)
    assert await other.first_use(key, "mail-1", TOKEN_TTL_SECONDS)
    assert not await other.first_use(key, "forged", TOKEN_TTL_SECONDS)
    assert not await one.first_use(key, "forged", TOKEN_TTL_SECONDS)
    name = f"switchboard:replay:{hashlib.sha256(key.encode()).hexdigest()}"
    assert MAX_SKEW_SECONDS <= await redis.ttl(name) <= TOKEN_TTL_SECONDS
    assert await redis.keys(f"*{key.split(':')[1]}*") == []  # tokens are not stored readable


@pytest.mark.asyncio
async def test_replay_guard_in_redis_forgets_a_token_after_its_ttl(redis: Redis) -> None:
    guard = ReplayGuard(redis)
    key = f"mailgun:{uuid.uuid4().hex}"
    assert await guard.first_use(key, "mail-1", 0.2)  # rounded up to Redis's 1 s minimum
    assert not await guard.first_use(key, "forged", 0.2)
    name = f"switchboard:replay:{hashlib.sha256(key.encode()).hexdigest()}"
    assert await redis.ttl(name) == 1
    await redis.delete(name)  # as Redis expires it; waiting a second adds nothing
    assert await guard.first_use(key, "forged", 0.2)


# --- Mailgun's signed fields, read before the form is parsed ---------------------------------

SIGNED = {"timestamp": str(NOW), "token": "a" * 50, "signature": mailgun_signature(str(NOW),
                                                                                   "a" * 50)}


def encoded(form: dict[str, str], files: dict | None = None) -> tuple[bytes, str]:
    """A form as Mailgun posts it (urlencoded, or multipart with attachments)."""
    request = httpx.Request("POST", "http://gateway.test", data=form, files=files)
    return request.read(), request.headers["Content-Type"]


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
def test_the_signed_fields_are_found_wherever_they_are(multipart: bool) -> None:
    # After a large body and an attachment whose bytes imitate a field, in Mailgun's way.
    decoy = b'\r\nContent-Disposition: form-data; name="token"\r\n\r\nforged\r\n'
    files = {"attachment-1": ("a.bin", decoy * 100, "application/octet-stream")} if multipart \
        else None
    form = {"body-plain": "token=forged&signature=forged " * 2000, **SIGNED,
            "stripped-text": "&timestamp=1"}
    body, content_type = encoded(form, files)
    assert mailgun_signed_fields(body, content_type) == SIGNED
    fields_first = {**SIGNED, "body-plain": "hi"}
    assert mailgun_signed_fields(*encoded(fields_first, files)) == SIGNED


@pytest.mark.parametrize("content_type", [
    "application/json", "text/plain", "multipart/form-data", "multipart/form-data; boundary=",
    "",
])
def test_other_bodies_have_no_signed_fields(content_type: str) -> None:
    body, _ = encoded(SIGNED)
    assert mailgun_signed_fields(body, content_type) == {}


def test_oversized_or_absent_fields_are_left_out() -> None:
    huge = {**SIGNED, "token": "a" * (MAX_SIGNED_FIELD + 1)}
    for files in (None, {"attachment-1": ("a.bin", b"x", "image/png")}):
        assert "token" not in mailgun_signed_fields(*encoded(huge, files))
        assert mailgun_signed_fields(*encoded({"body-plain": "hi"}, files)) == {}
    assert mailgun_signed_fields(b"", "application/x-www-form-urlencoded") == {}


def test_a_flood_of_tiny_parts_is_scanned_only_so_far() -> None:
    part = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ny\r\n"
    tail = b"".join(b"--b\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                    % (name.encode(), value.encode()) for name, value in SIGNED.items())
    body = part * MAX_PARTS_SCANNED + tail + b"--b--\r\n"
    assert mailgun_signed_fields(body, "multipart/form-data; boundary=b") == {}
    body = part * 10 + tail + b"--b--\r\n"
    assert mailgun_signed_fields(body, "multipart/form-data; boundary=b") == SIGNED
