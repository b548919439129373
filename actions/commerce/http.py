"""HTTP plumbing shared by the real order backends (Shopify, WooCommerce).

One place decides what counts as *transient* (worth another try), what is a *configuration*
problem (retrying cannot help, an admin must act) and what is simply an error, so every
platform behaves the same way towards the actions:

* connect errors, timeouts, HTTP 429 and 5xx -> `TransientBackendError`, retried by tenacity
  (3 attempts, short exponential backoff, `Retry-After` honoured but capped so a chat visitor
  is never kept waiting long);
* HTTP 401/403, redirects and a store URL whose host resolves to a private network address
  -> `BackendNotConfigured` (wrong/expired credentials, missing scopes, wrong store URL),
  never retried. The shop's owner names the store's URL, so the clients connect only to public
  addresses (core/destinations.py; the runtime's client, or `client_for` below) unless
  ALLOW_PRIVATE_DESTINATIONS (development, tests);
* anything else unexpected -> `BackendError`.

Nothing here ever logs headers, credentials or response bodies: messages carry the platform
name, the HTTP method/path and the status code only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from actions.commerce.base import BackendError, BackendNotConfigured
from core.destinations import Destinations, PrivateDestination

logger = logging.getLogger(__name__)

RETRY_ATTEMPTS = 3
# 0.25 s, then 0.5 s: enough to ride out a blip or a leaky-bucket refill, short enough that a
# visitor in a chat window still gets an answer (or a polite "try later") within seconds.
_BACKOFF = wait_exponential(multiplier=0.25, min=0.25, max=2.0)
# Shopify sends "Retry-After: 2.0" on 429; we honour it but never sleep longer than this.
RETRY_AFTER_CAP = 2.0

JSONDict = dict[str, Any]


def client_for(timeout: float, destinations: Destinations | None) -> httpx.AsyncClient:
    """A backend's own client when none is shared with it: no redirects, and public
    addresses only unless `destinations` allows private ones."""
    return (destinations or Destinations()).client(timeout=timeout)


class TransientBackendError(BackendError):
    """A failure that may well go away by itself: worth another attempt."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header; HTTP-date forms are ignored (backoff applies)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


def _wait(retry_state: RetryCallState) -> float:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    if isinstance(exc, TransientBackendError) and exc.retry_after is not None:
        return min(exc.retry_after, RETRY_AFTER_CAP)
    return float(_BACKOFF(retry_state))


def retrying(log: logging.Logger, platform: str) -> AsyncRetrying:
    """A bounded tenacity loop that only retries `TransientBackendError`.

    `reraise=True` makes the last error surface as itself (a `BackendError` subclass), so
    callers see the same exception types whether or not retries happened.
    """

    def _before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "%s: attempt %d/%d failed (%s); retrying",
            platform,
            state.attempt_number,
            RETRY_ATTEMPTS,
            exc,
        )

    return AsyncRetrying(
        stop=stop_after_attempt(RETRY_ATTEMPTS),
        wait=_wait,
        retry=retry_if_exception_type(TransientBackendError),
        reraise=True,
        before_sleep=_before_sleep,
    )


async def send_once(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    platform: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | int] | None = None,
    json: Any = None,
    auth: httpx.Auth | None = None,
) -> httpx.Response:
    """One HTTP exchange, with the failure classification described in the module doc.

    Returns the response for every other status (2xx, 404, 400, ...): what those mean is
    the platform module's business.
    """
    path = httpx.URL(url).path  # never the query string or credentials
    try:
        response = await client.request(
            method,
            url,
            headers=headers,
            params=params,
            json=json,
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            # Per request, so our timeout also applies to a client the caller passed in.
            timeout=timeout,
        )
    except PrivateDestination:
        raise BackendNotConfigured(
            f"{platform}: the store's URL resolves to a private network address; "
            "configure the store's public https URL"
        ) from None
    except httpx.TimeoutException as exc:
        raise TransientBackendError(
            f"{platform}: {method} {path} got no answer within {timeout:g}s"
        ) from exc
    except httpx.TransportError as exc:
        raise TransientBackendError(
            f"{platform}: {method} {path} could not be sent ({type(exc).__name__})"
        ) from exc
    except httpx.HTTPError as exc:
        raise BackendError(f"{platform}: {method} {path} failed ({type(exc).__name__})") from exc

    status = response.status_code
    if status in (401, 403):
        raise BackendNotConfigured(
            f"{platform}: {method} {path} was refused (HTTP {status}); "
            "check the credentials and their permissions"
        )
    if 300 <= status < 400:
        # We do not follow redirects: Basic auth must not leak to another host, and a store
        # URL that redirects is a settings problem the tenant can fix.
        raise BackendNotConfigured(
            f"{platform}: {method} {path} was redirected (HTTP {status}); "
            "configure the store's canonical https URL"
        )
    if status == 429:
        raise TransientBackendError(
            f"{platform}: {method} {path} was rate limited (HTTP 429)",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        raise TransientBackendError(f"{platform}: {method} {path} failed with HTTP {status}")
    return response


def read_json(response: httpx.Response, platform: str) -> Any:
    """The decoded body of a successful response; anything else is a `BackendError`."""
    request = response.request
    where = f"{request.method} {request.url.path}"
    if not response.is_success:
        raise BackendError(f"{platform}: {where} failed with HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise BackendError(f"{platform}: {where} did not answer with JSON") from exc


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    platform: str,
    timeout: float,
    log: logging.Logger,
    retry: bool = True,
    allow_404: bool = False,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | int] | None = None,
    json: Any = None,
    auth: httpx.Auth | None = None,
) -> Any:
    """Send, classify, decode. Returns None for a 404 when `allow_404` is set.

    `retry=False` is for calls that are themselves part of a larger retried unit (creating
    things is only safe to repeat together with its "did I already do this?" check).
    """

    async def once() -> Any:
        response = await send_once(
            client,
            method,
            url,
            platform=platform,
            timeout=timeout,
            headers=headers,
            params=params,
            json=json,
            auth=auth,
        )
        if allow_404 and response.status_code == 404:
            return None
        return read_json(response, platform)

    if not retry:
        return await once()
    async for attempt in retrying(log, platform):
        with attempt:
            return await once()
    raise BackendError(f"{platform}: retry loop ended without an outcome")  # pragma: no cover


def parse_datetime(value: object) -> datetime | None:
    """ISO 8601 -> aware datetime. Naive values are taken as UTC (WooCommerce's *_gmt)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        logger.debug("unparseable timestamp from platform: %r", value)
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def same_email(a: object, b: str) -> bool:
    """Case-insensitive, whitespace-tolerant email equality (empty never matches)."""
    if not isinstance(a, str):
        return False
    left = a.strip().lower()
    return bool(left) and left == b.strip().lower()


def idempotency_ref(idempotency_key: str) -> str:
    """A short, stable marker for an idempotency key, written into what we create.

    Neither platform accepts an idempotency key for the calls we make, so we leave this marker
    in the created object (Shopify customerNote, WooCommerce order note) and look for it
    before creating again. Hashed: callers' keys can be long (tenant, order, item ids) and
    Shopify caps customerNote at 300 characters.
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:20]
    return f"switchboard-ref:{digest}"
