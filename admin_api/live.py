"""Agents' live view of their shop: server-sent events, the loopback relay, who is connected.

Every event of a shop (core/live.py kinds: handoffs requested, claimed, transferred,
resolved, visitors' and agents' messages, deliveries, notes) reaches the admin process's
`AgentsBus` (a LocalBus): from Redis pub/sub when REDIS_URL is set (`relay_from_redis` runs
in a listener task, so every admin replica sees every event), else from the loopback route
`POST /internal/live` that other processes post to (core/live.py `HttpRelay`). The admin
service's own events go out through `LiveHub.publish`: to Redis when configured (then back in
through the relay, on every replica), else straight to the bus.

`GET /api/v1/events` (admin_api/routes/inbox.py) streams the caller's shop's events, and only
those: the bus is keyed by shop and the shop comes from the principal. Each frame is
`event: <kind>` and `data: <json>` where the sender id is replaced by the opaque
`conversation_id` (admin_api/routes/conversations.py) and the masked visitor; fields that
could carry a visitor's address are dropped. A comment line every HEARTBEAT seconds keeps
proxies from closing an idle stream; at each one the caller's credentials are checked again
(a revoked key or an ended session stops receiving). A stream also ends after
STREAM_SECONDS, and when the service stops (a deploy, a restart: open streams no longer hold the
shutdown for Sanic's whole grace period); the browser's EventSource reconnects by itself
(`retry:`) and the page reloads its queue then, so an event missed in between costs nothing.

Who is connected (`Presence`): the bus's subscribers in this process; with Redis, a sorted
set per shop (member: one stream, score: when it expires unless refreshed by a heartbeat)
that every replica shares, so "no agent has the inbox open" (admin_api/notices.py) holds
across replicas.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from admin_api.errors import BadRequest, Unauthorized
from admin_api.routes.conversations import conversation_id, masked_visitor
from core.live import RELAY_PATH, LiveEvent, LocalBus, RedisPublisher, relay_from_redis
from core.sender_ids import NotTenantScoped, SenderId

log = logging.getLogger(__name__)
HEARTBEAT = 15.0  # seconds between comment lines on an idle stream
STREAM_SECONDS = 30 * 60.0  # then the browser reconnects (and the credentials are re-read)
RETRY_MS = 2000  # how soon an EventSource reconnects
PRESENCE_PREFIX = "sb:live:agents:"
PRESENCE_TTL = 3 * HEARTBEAT  # a replica that dies stops counting its streams after this
# Fields an event's data may not pass to a page: anything that could be a visitor's address.
PRIVATE = frozenset({"sender_id", "sender", "recipient", "phone", "email", "address", "from",
                     "to", "user_key", "user"})
_KIND = re.compile(r"^[a-z][a-z_.]{0,63}$")

Hook = Callable[[LiveEvent], Awaitable[None]]


class AgentsBus(LocalBus):
    """The admin process's hub; hooks (the email notice) also see every event, off the
    publisher's path."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[Hook] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish(self, event: LiveEvent) -> None:
        await super().publish(event)
        for hook in self.hooks:
            task = asyncio.create_task(self._run(hook, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(hook: Hook, event: LiveEvent) -> None:
        try:
            await hook(event)
        except Exception:
            log.exception("live event hook failed", extra={"kind": event.kind})

    async def settle(self) -> None:
        """Wait for the hooks running now (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class Presence:
    """How many agents' streams a shop has open, in this process or (Redis) on any replica."""

    def __init__(self, bus: LocalBus, redis: Redis | None) -> None:
        self._bus = bus
        self._redis = redis

    async def count(self, tenant_id: str) -> int:
        if self._redis is None:
            return self._bus.listeners(tenant_id)
        try:
            return int(await self._redis.zcount(PRESENCE_PREFIX + tenant_id, time.time(), "+inf"))
        except RedisError:
            log.warning("presence not readable from Redis; counting this process's streams")
            return self._bus.listeners(tenant_id)

    async def refresh(self, tenant_id: str, stream: str) -> None:
        if self._redis is None:
            return
        key = PRESENCE_PREFIX + tenant_id
        try:
            now = time.time()
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {stream: now + PRESENCE_TTL})
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.expire(key, int(PRESENCE_TTL) + 1)
                await pipe.execute()
        except RedisError:
            log.warning("presence not written to Redis")

    @asynccontextmanager
    async def present(self, tenant_id: str) -> AsyncIterator[str]:
        stream = uuid.uuid4().hex
        await self.refresh(tenant_id, stream)
        try:
            yield stream
        finally:
            if self._redis is not None:
                try:
                    await self._redis.zrem(PRESENCE_PREFIX + tenant_id, stream)
                except RedisError:
                    pass  # it expires by itself


class LiveHub:
    """What app.ctx.live holds: the bus, who is connected, how the admin service publishes."""

    def __init__(self, redis: Redis | None, stream_seconds: float = STREAM_SECONDS,
                 heartbeat: float = HEARTBEAT) -> None:
        self.bus = AgentsBus()
        self.stream_seconds = stream_seconds
        self.heartbeat = heartbeat
        self.relay: asyncio.Task[None] | None = None
        self.attach(redis)

    def attach(self, redis: Redis | None) -> None:
        """Use this Redis connection (the app's, opened at each start)."""
        self.closing = asyncio.Event()  # set when the service stops: the streams end
        self.redis = redis
        self.presence = Presence(self.bus, redis)
        self._redis_publisher = RedisPublisher(redis) if redis is not None else None

    async def publish(self, event: LiveEvent) -> None:
        """Never raises (core/live.py Publisher)."""
        if self._redis_publisher is not None:
            await self._redis_publisher.publish(event)
        else:
            await self.bus.publish(event)


def hub_of(app: Sanic) -> LiveHub:
    hub: LiveHub = app.ctx.live
    return hub


def frame(event: LiveEvent, key: bytes) -> str | None:
    """One server-sent event for a page, without the sender id; None for an event no page
    should see (a kind that is not one)."""
    if not _KIND.match(event.kind):
        return None
    data = _scrubbed(event.data)
    data["conversation_id"] = conversation_id(key, event.tenant_id, event.sender_id)
    data["visitor"] = masked_visitor(event.sender_id)
    try:
        data.setdefault("channel", SenderId.parse(event.sender_id).channel)
    except NotTenantScoped:
        pass
    data["at"] = event.at
    return (f"event: {event.kind}\n"
            f"data: {json.dumps(data, default=str, separators=(',', ':'))}\n\n")


def _scrubbed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items() if str(k).lower() not in PRIVATE}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


async def stream(request: Request, tenant_id: str,
                 still_allowed: Callable[[], Awaitable[bool]]) -> None:
    """Answer `request` with the shop's events until STREAM_SECONDS pass, the caller's
    credentials stop being good, the page goes away or the service stops."""
    hub = hub_of(request.app)
    key = request.app.ctx.settings.conversation_id_key
    response = await request.respond(
        content_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hub.stream_seconds
    closing = asyncio.ensure_future(hub.closing.wait())
    getting: asyncio.Future[LiveEvent] | None = None
    try:
        async with hub.bus.subscribe(tenant_id) as queue, \
                hub.presence.present(tenant_id) as me:
            await response.send(f"retry: {RETRY_MS}\n: connected\n\n")
            while (left := deadline - loop.time()) > 0 and not closing.done():
                getting = asyncio.ensure_future(queue.get())
                await asyncio.wait((getting, closing), timeout=min(hub.heartbeat, left),
                                   return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():  # a quiet heartbeat, the deadline or the service stopping
                    getting.cancel()
                    if closing.done() or loop.time() >= deadline or not await still_allowed():
                        break
                    await hub.presence.refresh(tenant_id, me)
                    await response.send(": heartbeat\n\n")
                    continue
                event = getting.result()
                if event.tenant_id != tenant_id:  # the bus is keyed by shop; never trust only that
                    continue
                text = frame(event, key)
                if text is not None:
                    await response.send(text)
    finally:  # also when the page goes away (the handler is cancelled)
        for waiting in (closing, getting):
            if waiting is not None:
                waiting.cancel()
    await response.eof()


def install(app: Sanic) -> None:
    """The hub on app.ctx.live, the relay from Redis, and POST /internal/live."""
    settings = app.ctx.settings
    token = settings.internal_token.reveal().encode()

    @app.before_server_start
    async def open_hub(app: Sanic) -> None:
        # After app.py's open_connections (registered first): app.ctx.redis is set. One hub
        # per app, kept if the app starts again (Sanic's test client starts it per request).
        hub: LiveHub | None = getattr(app.ctx, "live", None)
        if hub is None:
            app.ctx.live = LiveHub(app.ctx.redis, **getattr(app.ctx, "live_options", {}))
        else:
            hub.attach(app.ctx.redis)

    @app.after_server_start
    async def start_relay(app: Sanic) -> None:
        hub = hub_of(app)
        if hub.redis is not None and (hub.relay is None or hub.relay.done()):
            hub.relay = asyncio.create_task(relay_from_redis(hub.redis, hub.bus),
                                            name="live-relay")

    @app.before_server_stop
    async def stop_relay(app: Sanic) -> None:
        hub = hub_of(app)
        hub.closing.set()
        if hub.relay is not None:
            hub.relay.cancel()
            try:
                await hub.relay
            except (asyncio.CancelledError, Exception):
                pass
            hub.relay = None
        await hub.bus.settle()

    @app.post(RELAY_PATH, name="internal_live")
    async def internal_live(request: Request) -> HTTPResponse:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
            raise Unauthorized("wrong internal token")
        try:
            event = LiveEvent.loads(request.body or b"")
        except (ValueError, KeyError, TypeError):
            raise BadRequest("send one live event (core/live.py LiveEvent.dumps)") from None
        await hub_of(request.app).publish(event)
        return json_response({"accepted": True}, status=202)
