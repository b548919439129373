"""The web push relay over a real Redis (TEST_REDIS_URL): one gateway's pushes reach the sockets
another gateway holds, and no message on its channels ends the relay. It is one loop per
gateway: when it ended, agents' replies stopped reaching every widget that gateway served."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from connectors.channels.web.push import CHANNEL_PREFIX, WebPush
from core.live import pubsub_channel

pytestmark = pytest.mark.asyncio

VISITOR = "t-shop-0001:web:c-7f3a"
HELLO = [{"type": "bot", "text": "Sam here: your parcel left today.", "agent": {"name": "Sam"}}]
# What anyone who can publish on the Redis server may send on a conversation's channel.
BAD: dict[str, bytes] = {
    "arrays past the parser": b"[" * 100_000 + b"]" * 100_000,
    "objects past the parser": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "frames past our bound": b'{"frames": [{"type": "bot", "text": '
                             + b"[" * 900 + b"]" * 900 + b"}]}",
    "not JSON": b"{frames",
    "not UTF-8": b'{"frames": [{"type": "bot", "text": "\xff"}]}',
    "no frames": b'{"messages": []}',
    "frames not a list": b'{"frames": 5}',
    "a frame not an object": b'{"frames": ["bot", 1]}',
    "not an object": b"[1, 2]",
}


class Gateway:
    """A gateway's WebPush relay running on Redis, and what its one socket received."""

    def __init__(self, push: WebPush) -> None:
        self.push = push
        self.received: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()

    async def deliver(self, frames: list[dict[str, Any]]) -> None:
        await self.received.put(frames)


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[Redis]:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("Redis not answering (make test sets TEST_REDIS_URL)")
    client = Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def gateway(redis: Redis) -> AsyncIterator[Gateway]:
    push = WebPush(redis)
    relay = asyncio.create_task(push.run())
    gateway = Gateway(push)
    try:
        await asyncio.wait_for(push.ready.wait(), 5)
        with push.listen(VISITOR, gateway.deliver):
            yield gateway
        assert not relay.done(), "the relay ended"
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


async def test_a_push_reaches_the_socket_another_gateway_holds(redis: Redis,
                                                               gateway: Gateway) -> None:
    other = WebPush(redis)  # publishes only: its own relay is not running
    await other.push(VISITOR, HELLO)
    assert await asyncio.wait_for(gateway.received.get(), 5) == HELLO


async def test_no_message_ends_the_relay(redis: Redis, gateway: Gateway,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """Each bad message is logged and skipped (never passed to a socket), and the next push
    arrives. `[[[[...` ended the relay with a RecursionError, `{"frames": 5}` with a
    TypeError; a channel name that is not UTF-8 with a UnicodeDecodeError."""
    channel = pubsub_channel(redis, CHANNEL_PREFIX)
    caplog.set_level(logging.WARNING, logger="connectors.channels.web.push")
    for raw in BAD.values():
        await redis.publish(channel + VISITOR, raw)
    await redis.publish(channel.encode() + b"\xff\xfe", b'{"frames": []}')
    await gateway.push.push(VISITOR, HELLO)
    assert await asyncio.wait_for(gateway.received.get(), 5) == HELLO
    assert gateway.received.empty()
    ignored = [r for r in caplog.records if r.getMessage() == "malformed web push ignored"]
    assert len(ignored) == len(BAD) + 1
    assert not any("Sam here" in r.getMessage() or VISITOR in r.getMessage()
                   for r in caplog.records)
