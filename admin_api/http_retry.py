"""One retried POST for the admin service's loopback calls (the gateway's outbox, Rasa's tracker).

Both want the same thing: an httpx client made at first use (making one costs ~60 ms, and most
admin processes never call either), connection failures and 5xx answers retried a few times
with jittered exponential waits (tenacity), and the caller told `Unreachable` when they kept
failing. Any other answer (2xx, 3xx, 4xx) is the caller's to read.
"""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

ATTEMPTS = 3


class Unreachable(Exception):
    """Not reachable, or 5xx on every attempt; `error` names the last failure's type."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _Transient(Exception):
    pass


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Transient | httpx.TransportError)


class RetryingPoster:
    def __init__(self, timeout: float, client: httpx.AsyncClient | None = None,
                 attempts: int = ATTEMPTS, retry_wait: float = 0.2) -> None:
        self._timeout = timeout
        self._client = client  # made at first use
        self._attempts = attempts
        self._retry_wait = retry_wait

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST `url` (kwargs as httpx takes them) until it answers below 500."""
        try:
            async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self._attempts), reraise=True,
                    wait=wait_exponential_jitter(multiplier=self._retry_wait, max=2.0,
                                                jitter=self._retry_wait),
                    retry=retry_if_exception(_retryable)):
                with attempt:
                    answer = await self._http().post(url, **kwargs)
                    if answer.status_code >= 500:
                        raise _Transient(f"answered {answer.status_code}")
        except (_Transient, httpx.HTTPError) as exc:
            raise Unreachable(type(exc).__name__) from None
        return answer

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self._timeout, connect=2.0))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
