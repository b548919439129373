"""Typed errors of the gateway, mapped to one HTTP answer in one place (app.py)."""

from __future__ import annotations

from collections.abc import Mapping


class GatewayError(Exception):
    status = 500

    # The JSON `detail` a client sees: a sentence, never a traceback or a secret; `headers`
    # go with the answer (WWW-Authenticate on a 401, Retry-After on a 429).
    def __init__(self, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(GatewayError):
    status = 400


class Unauthorized(GatewayError):
    """A missing, unknown or revoked API key (REST). RFC 6750 asks for a Bearer challenge."""

    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, {"WWW-Authenticate": 'Bearer realm="switchboard"'})


class Forbidden(GatewayError):
    """Missing or bad signature, wrong receiving address, forged visitor token."""

    status = 403


class PayloadTooLarge(GatewayError):
    """A body over its route's limit (connectors/bounds.py), refused before it is read."""

    status = 413


class TenantNotFound(GatewayError):
    status = 404


class ChannelNotConfigured(GatewayError):
    """The shop has not set this channel up (no credentials for it)."""

    status = 404


class NotAcceptable(GatewayError):
    """Mailgun's way to reject without retries."""

    status = 406


class UpstreamUnavailable(GatewayError):
    """Rasa or the action server did not answer in time."""

    status = 503


class BotUnreachable(UpstreamUnavailable):
    """Rasa could not be connected to: the message never reached it, so trying again is safe
    (after a timeout or an error answer it may have been taken in, and a retry would repeat it)."""


class RateLimited(GatewayError):
    """Over a rate limit (connectors/limits.py): 429 with `Retry-After` in seconds."""

    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, {"Retry-After": str(retry_after)})
        self.retry_after = retry_after
