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

from core.live import HttpRelay, LiveEvent, LocalBus, RedisPublisher, relay_from_redis
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
