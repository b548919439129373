"""Live events for agents' pages: what just happened in a shop's conversations, within ms.

Publishers: the gateway (a visitor wrote in a conversation a person owns, a handoff was
requested, a reply was delivered), the action server (a handoff was requested) and the admin
service (claimed, transferred, replied, noted, resolved). The subscriber is the admin service,
which streams each shop's events to its connected agents (server-sent events).

Across processes the events travel over Redis pub/sub when REDIS_URL is set (one channel per
shop, `sb:live:{db}:{tenant_id}`). Without Redis (the embedded default, one host) a publisher in
another process posts the event to the admin service's loopback route `/internal/live`
(`HttpRelay`, authenticated with Settings.internal_token), which hands it to its in-process
`LocalBus`. Live events are a notification, not a record: a lost one costs a page refresh
(the page reloads the queue on reconnect); the durable record is the database
(`conversation_events`, messages).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core import nesting

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "sb:live:"
RELAY_PATH = "/internal/live"
QUEUE_SIZE = 1000  # per subscriber; a page that stops reading loses events, not memory

# Kinds: the handoff transitions of core/handoffs.py EVENT_KINDS, and these.
VISITOR_MESSAGE = "message.visitor"  # a visitor wrote in a conversation a person owns
AGENT_MESSAGE = "message.agent"  # an agent's reply was recorded (and handed to the gateway)
DELIVERY = "message.delivery"  # a provider reported on a message we sent
NOTE = "note.added"


@dataclass(frozen=True)
class LiveEvent:
    tenant_id: str
    kind: str
    sender_id: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)  # when it happened (epoch seconds)

    def dumps(self) -> str:
        return json.dumps(asdict(self), default=str, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> LiveEvent:
        """The event `dumps` wrote; ValueError (JSON nested past core/nesting.py's bound
        included: a RecursionError once ended the Redis relay for good), KeyError or
        TypeError for anything else."""
        value = nesting.loads(raw)
        return cls(tenant_id=str(value["tenant_id"]), kind=str(value["kind"]),
                   sender_id=str(value["sender_id"]), data=dict(value.get("data") or {}),
                   at=float(value.get("at") or time.time()))


class Publisher(Protocol):
    async def publish(self, event: LiveEvent) -> None:
        """Never raises: a live event that cannot go out is logged and dropped."""


class LocalBus:
    """In-process fan-out to each subscriber's bounded queue (the admin service's hub)."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[LiveEvent]]] = {}

    def listeners(self, tenant_id: str) -> int:
        """How many subscribers the shop has now (agents with the inbox open)."""
        return len(self._queues.get(tenant_id, ()))

    async def publish(self, event: LiveEvent) -> None:
        for queue in list(self._queues.get(event.tenant_id, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("live event dropped for a slow page", extra={"kind": event.kind})

    @asynccontextmanager
    async def subscribe(self, tenant_id: str) -> AsyncIterator[asyncio.Queue[LiveEvent]]:
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(QUEUE_SIZE)
        self._queues.setdefault(tenant_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._queues.get(tenant_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._queues[tenant_id]


def pubsub_channel(redis: Redis, prefix: str) -> str:
    """`prefix` within the Redis database the client uses. Pub/sub ignores database numbers:
    two deployments on one Redis server (/0 and /1, say) would hear each other's events."""
    return f"{prefix}{redis.connection_pool.connection_kwargs.get('db', 0)}:"


class RedisPublisher:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._prefix = pubsub_channel(redis, CHANNEL_PREFIX)

    async def publish(self, event: LiveEvent) -> None:
        try:
            await self._redis.publish(self._prefix + event.tenant_id, event.dumps())
        except RedisError:
            log.warning("live event not published: Redis failed", extra={"kind": event.kind},
                        exc_info=True)


async def relay_from_redis(redis: Redis, bus: LocalBus) -> None:
    """Run forever: every shop's events from Redis into the admin service's LocalBus."""
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.psubscribe(pubsub_channel(redis, CHANNEL_PREFIX) + "*")
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                try:
                    await bus.publish(LiveEvent.loads(message["data"]))
                except (ValueError, KeyError, TypeError):
                    log.warning("malformed live event ignored")
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError):
            log.warning("live events from Redis interrupted; resubscribing", exc_info=True)
            await asyncio.sleep(1.0)
        finally:
            await pubsub.aclose()


class HttpRelay:
    """Posts events to the admin service's /internal/live (the embedded default)."""

    def __init__(self, admin_url: str, token: str, client: httpx.AsyncClient | None = None,
                 timeout: float = 2.0) -> None:
        self._url = admin_url.rstrip("/") + RELAY_PATH
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def publish(self, event: LiveEvent) -> None:
        # A kept-alive connection the admin service closed meanwhile fails at once, before
        # the event was read ("disconnected without sending a response", or the write
        # failing): once more, on a new connection. A timeout or a broken answer may follow a
        # delivered event and is not retried (the agents' pages would show it twice).
        for attempt in (1, 2):
            try:
                answer = await self._client.post(self._url, content=event.dumps(),
                                                 headers={**self._headers,
                                                          "Content-Type": "application/json"})
            except (httpx.RemoteProtocolError, httpx.WriteError):
                if attempt == 1:
                    continue
                log.info("live event not relayed: the admin service closed the connection",
                         extra={"kind": event.kind})
            except httpx.HTTPError:
                log.info("live event not relayed: the admin service is not reachable",
                         extra={"kind": event.kind})
            else:
                if answer.status_code >= 300:
                    log.warning("live event refused by the admin service",
                                extra={"kind": event.kind, "status": answer.status_code})
            return

    async def aclose(self) -> None:
        await self._client.aclose()


def publisher(redis: Redis | None, admin_url: str, token: str) -> Publisher:
    """The gateway's and action server's way to publish: Redis when configured, else the
    admin service's loopback route."""
    return RedisPublisher(redis) if redis is not None else HttpRelay(admin_url, token)
