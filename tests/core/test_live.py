"""Live events over Redis pub/sub stay within the deployment's Redis database: pub/sub itself
ignores database numbers, so two deployments sharing one Redis server (staging on one
database, production on another) would otherwise see each other's visitors in their inboxes."""

from __future__ import annotations

import asyncio
import contextlib
import os

import httpx
import pytest
from redis.asyncio import Redis

from core.live import (
    CHANNEL_PREFIX,
    HttpRelay,
    LiveEvent,
    LocalBus,
    RedisPublisher,
    pubsub_channel,
    relay_from_redis,
)
from tests.conftest import redis_url_below

pytestmark = pytest.mark.asyncio


async def test_events_reach_only_subscribers_of_the_same_database() -> None:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("Redis not answering (make test sets TEST_REDIS_URL)")
    ours, theirs = Redis.from_url(url), Redis.from_url(redis_url_below(url, 1))
    bus = LocalBus()
    relay = asyncio.create_task(relay_from_redis(ours, bus))
    try:
        async with bus.subscribe("shop-1") as queue:
            await asyncio.sleep(0.3)  # the relay has subscribed
            for redis, number in ((theirs, 1), (ours, 2)):
                await RedisPublisher(redis).publish(
                    LiveEvent("shop-1", "visitor_message", "v1", {"n": number}))
            async with asyncio.timeout(5):
                heard = await queue.get()
            await asyncio.sleep(0.3)
            assert heard.data == {"n": 2}
            assert queue.empty()  # the other database's event never arrived
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await ours.aclose()
        await theirs.aclose()


async def test_the_relay_tries_again_when_a_kept_connection_was_closed() -> None:
    """The admin service closed the kept-alive connection: the event goes on a new one
    instead of being lost (an agent's page missed a visitor's rating once this way)."""
    calls: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(204)

    relay = HttpRelay("http://admin.test", "token",
                      client=httpx.AsyncClient(transport=httpx.MockTransport(answer)))
    await relay.publish(LiveEvent(tenant_id="t", kind="satisfaction.given", sender_id="t:sms:x",
                                  data={"rating": 4}))
    assert len(calls) == 2
    await relay.aclose()


DEEP = ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"tenant_id": "t", "kind": "k", "sender_id": "s", "data": {"a": '
        + "[" * 900 + "]" * 900 + "}}"]


@pytest.mark.parametrize("raw", DEEP, ids=["arrays", "objects", "deep data"])
async def test_an_event_nested_too_deep_is_malformed_like_any_other(raw: str) -> None:
    # A ValueError, which the relay and the admin's /internal/live route treat as malformed;
    # it was a RecursionError that nothing caught.
    with pytest.raises(ValueError):
        LiveEvent.loads(raw)
    with pytest.raises(ValueError):
        LiveEvent.loads(raw.encode())


async def test_the_redis_relay_outlives_an_event_nested_too_deep() -> None:
    """Anyone who can publish on the Redis server once ended the relay for good with
    `[[[[...` (RecursionError): every agent's live inbox went quiet until a restart."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("Redis not answering (make test sets TEST_REDIS_URL)")
    redis = Redis.from_url(url)
    bus = LocalBus()
    relay = asyncio.create_task(relay_from_redis(redis, bus))
    publisher = RedisPublisher(redis)
    try:
        async with bus.subscribe("shop-deep") as queue:
            await asyncio.sleep(0.3)  # the relay has subscribed
            channel = pubsub_channel(redis, CHANNEL_PREFIX) + "shop-deep"
            for raw in DEEP:
                await redis.publish(channel, raw)
            await publisher.publish(LiveEvent("shop-deep", "message.visitor", "v1", {"n": 1}))
            async with asyncio.timeout(5):
                heard = await queue.get()
            assert heard.data == {"n": 1}
            assert not relay.done()
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await redis.aclose()
