"""Signed tokens used once: a token seen before may come again only with the same content.

Mailgun signs a timestamp and a token, not the mail: the same token with other content is
someone replaying the signature on a forged mail, while the same content again is a redelivery
(which the inbox's Message-ID dedupe then drops). Redis remembers tokens across gateway
processes when REDIS_URL is set; otherwise this process does (embedded mode: one process).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from redis.asyncio import Redis


class ReplayGuard:
    def __init__(self, redis: Redis | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._redis = redis
        self._clock = clock
        self._seen: dict[str, tuple[float, str]] = {}  # token -> (expiry, content)

    async def first_use(self, key: str, content: str, ttl: float) -> bool:
        """False when `key` was already used, within `ttl` seconds, for other content."""
        if self._redis is None:
            return self._remember(key, content, ttl)
        name = f"switchboard:replay:{hashlib.sha256(key.encode()).hexdigest()}"
        if await self._redis.set(name, content, nx=True, ex=max(1, int(ttl))):
            return True
        first = await self._redis.get(name)
        return (first.decode() if isinstance(first, bytes) else first) == content

    def _remember(self, key: str, content: str, ttl: float) -> bool:
        now = self._clock()
        if len(self._seen) > 1000:
            self._seen = {k: seen for k, seen in self._seen.items() if seen[0] > now}
        seen = self._seen.get(key)
        if seen is not None and seen[0] > now:
            return seen[1] == content
        self._seen[key] = (now + ttl, content)
        return True
