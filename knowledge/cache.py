"""Answers to repeated questions, keyed by tenant, index version and normalised question.

The index version is part of the key, so re-ingesting a tenant's documents makes every old
entry unreachable at once (and they expire on their own). Redis when REDIS_URL is set, so
all action-server replicas share it; an in-process LRU otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import unicodedata
from collections import OrderedDict
from typing import Any, Protocol

log = logging.getLogger(__name__)

TTL_SECONDS = 24 * 3600


def normalise(question: str) -> str:
    text = unicodedata.normalize("NFKC", question).casefold()
    text = re.sub(r"[^\w\s-]", " ", text)
    return " ".join(text.split())


def cache_key(tenant_id: str, index_version: str, question: str) -> str:
    digest = hashlib.sha256(normalise(question).encode()).hexdigest()[:32]
    return f"switchboard:kb-answer:{tenant_id}:{index_version}:{digest}"


class AnswerCache(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...
    async def set(self, key: str, value: dict[str, Any]) -> None: ...


class MemoryAnswerCache:
    def __init__(self, max_entries: int = 5000, ttl: float = TTL_SECONDS) -> None:
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self.max_entries = max_entries
        self.ttl = ttl

    async def get(self, key: str) -> dict[str, Any] | None:
        hit = self._entries.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        self._entries.move_to_end(key)
        return hit[1]

    async def set(self, key: str, value: dict[str, Any]) -> None:
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class RedisAnswerCache:
    """Cache misses when Redis is down: an answer is slower then, never wrong or missing."""

    def __init__(self, url: str, ttl: int = TTL_SECONDS) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.ttl = ttl

    async def get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.get(key)
        except Exception as exc:  # noqa: BLE001 - any Redis trouble is a miss
            log.warning("answer cache unavailable", extra={"error": type(exc).__name__})
            return None
        return json.loads(raw) if raw else None

    async def set(self, key: str, value: dict[str, Any]) -> None:
        try:
            await self._redis.set(key, json.dumps(value), ex=self.ttl)
        except Exception as exc:  # noqa: BLE001
            log.warning("answer cache unavailable", extra={"error": type(exc).__name__})

    async def close(self) -> None:
        await self._redis.aclose()
