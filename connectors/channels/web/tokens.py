"""Signed visitor tokens: a web conversation id is only usable with the token issued for it.

    v1.<conversation id>.<expiry, unix seconds>.<urlsafe base64 HMAC-SHA256>

The MAC covers the version, the tenant id, the conversation id and the expiry, so a token is
refused for another shop, after it expires, or with any byte changed; guessing a conversation
id gets nothing without the gateway's secret. The tenant id is not in the token (the URL names
the shop): a token carried to another shop's widget simply fails the signature check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid

VERSION = "v1"
# Conversation ids we issue are uuid4 hex; accept a little more, never separators or spaces.
_CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EXPIRY = re.compile(r"^\d{1,12}$")
MAX_TOKEN_LENGTH = 256


class InvalidToken(Exception):
    """The token cannot be used; the subclass says why (for logs, never for the visitor)."""


class MalformedToken(InvalidToken):
    pass


class BadSignature(InvalidToken):
    """Forged, altered, signed with another secret, or issued for another tenant."""


class ExpiredToken(InvalidToken):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(secret: bytes, tenant_id: str, conversation_id: str, expires: int) -> bytes:
    message = "\n".join((VERSION, tenant_id, conversation_id, str(expires))).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).digest()


def issue(secret: bytes, tenant_id: str, conversation_id: str | None = None,
          ttl_days: int = 30, now: float | None = None) -> tuple[str, str]:
    """(token, conversation id) for a new conversation, or a fresh token for an existing one."""
    if not secret:
        raise ValueError("the visitor token secret must not be empty")
    conversation_id = conversation_id or uuid.uuid4().hex
    if not _CONVERSATION_ID.match(conversation_id):
        raise ValueError("conversation ids are 1-64 characters of [A-Za-z0-9_-]")
    expires = int(now if now is not None else time.time()) + ttl_days * 86400
    signature = _b64(_mac(secret, tenant_id, conversation_id, expires))
    return f"{VERSION}.{conversation_id}.{expires}.{signature}", conversation_id


def verify(secret: bytes, tenant_id: str, token: object, now: float | None = None) -> str:
    """The conversation id the token was issued for; raises an InvalidToken subclass."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise MalformedToken("token must be a non-empty string of reasonable length")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != VERSION:
        raise MalformedToken("unknown token layout or version")
    _, conversation_id, expiry, signature = parts
    if not _CONVERSATION_ID.match(conversation_id) or not _EXPIRY.match(expiry):
        raise MalformedToken("token fields are not well formed")
    expected = _b64(_mac(secret, tenant_id, conversation_id, int(expiry)))
    # Signature before expiry: "expired" is only ever said about a token we really issued.
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        raise BadSignature("token signature does not match")
    if int(expiry) <= (now if now is not None else time.time()):
        raise ExpiredToken("token has expired")
    return conversation_id
