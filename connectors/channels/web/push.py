"""Messages for a web visitor that no turn of theirs asked for (an agent's reply), pushed live
to the conversation's open sockets, on whichever gateway process holds them.

Each socket registers its conversation (`listen`) for as long as it is open. `push` hands
frames to the conversation: with Redis (REDIS_URL), published on the conversation's own channel
`sb:web:{sender_id}`, which every gateway receives through one pattern subscription (`run`)
and passes to the sockets it holds; without Redis (one process), straight to them. A visitor
with no socket open misses nothing: the message is stored, and the widget's history shows it
when they come back (history.py). A push is a notification, never the record.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core import nesting
from core.live import pubsub_channel

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "sb:web:"

Deliver = Callable[[list[dict[str, Any]]], Awaitable[None]]


class WebPush:
    def __init__(self, redis: Redis | None = None) -> None:
        self._redis = redis
        self._prefix = pubsub_channel(redis, CHANNEL_PREFIX) if redis is not None else ""
        self._sockets: dict[str, set[Deliver]] = {}
        self.ready = asyncio.Event()  # `run` listens (Redis): pushes from now on arrive

    def open_sockets(self, sender_id: str) -> int:
        return len(self._sockets.get(sender_id, ()))

    @contextmanager
    def listen(self, sender_id: str, deliver: Deliver) -> Iterator[None]:
        """While the context is open, `deliver` gets the frames pushed to this conversation."""
        self._sockets.setdefault(sender_id, set()).add(deliver)
        try:
            yield
        finally:
            sockets = self._sockets.get(sender_id)
            if sockets is not None:
                sockets.discard(deliver)
                if not sockets:
                    del self._sockets[sender_id]

    async def push(self, sender_id: str, frames: list[dict[str, Any]]) -> None:
        if self._redis is not None:
            try:
                await self._redis.publish(self._prefix + sender_id,
                                          json.dumps({"frames": frames}))
                return
            except RedisError:
                log.warning("web push not published: Redis failed; sockets here only",
                            exc_info=True)
        await self.deliver_here(sender_id, frames)

    async def deliver_here(self, sender_id: str, frames: list[dict[str, Any]]) -> None:
        """To this process's sockets of the conversation; a closed one is skipped."""
        for deliver in list(self._sockets.get(sender_id, ())):
            try:
                await deliver(frames)
            except Exception as exc:  # the socket closed meanwhile: its history has it
                log.info("web push not delivered to a socket",
                         extra={"error": type(exc).__name__})

    async def run(self) -> None:
        """With Redis: forever, the pushes of every gateway to this process's sockets."""
        if self._redis is None:
            self.ready.set()
            return
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(self._prefix + "*")
                self.ready.set()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    try:
                        await self._relay(message)
                    except (ValueError, TypeError) as exc:  # UnicodeDecodeError, TooDeep too
                        log.warning("malformed web push ignored",
                                    extra={"error": type(exc).__name__})
                    except Exception:  # one message, whatever it is, never ends the relay
                        log.exception("web push not relayed")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                log.warning("web pushes from Redis interrupted; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                await pubsub.aclose()

    async def _relay(self, message: dict[str, Any]) -> None:
        """A published push to this process's sockets of its conversation; ValueError or
        TypeError for one that `push` did not write."""
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        sender_id = str(channel)[len(self._prefix):]
        if sender_id in self._sockets:
            await self.deliver_here(sender_id, frames_of(message["data"]))


def frames_of(data: str | bytes) -> list[dict[str, Any]]:
    """The frames of a push as `push` publishes them. Anyone who can publish on the Redis server
    reaches the relay: JSON nested past the parser's depth was a RecursionError that ended it
    (core/nesting.py), `{"frames": 5}` a TypeError; each is a ValueError here."""
    value = nesting.loads(data)
    frames = value.get("frames") if isinstance(value, dict) else None
    if not isinstance(frames, list) or not all(isinstance(frame, dict) for frame in frames):
        raise ValueError("not a web push: {frames: [objects]}")
    return frames
