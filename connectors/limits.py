"""Rate limits: token buckets per client address, per conversation and per shop.

Each shop sets three rates in messages a minute (tenants/models.py: `rate_per_client`,
`rate_per_conversation`, `rate_per_shop`, defaults 30 / 20 / 600; 0 turns one off). A bucket
holds one minute's worth (a person's burst of a few quick messages, or a shop's busy second,
passes untouched) and refills continuously at its rate. A message takes one token from each of
its buckets, all or none:

- REST and the widget answer within the request: over the limit, `admit` raises RateLimited
  (429, `Retry-After` = seconds until a token is back) and takes nothing, so a flooding client
  spends only its own buckets, never its shop's.
- SMS, WhatsApp and email providers retry a refused webhook and are not to be refused: their
  messages are always stored. `reserve` takes the tokens even into debt and returns how long
  until the message's turn: the 40th message of a flood from one phone number at 20 a minute is
  answered two minutes later, the 41st three seconds after it, so a flood is answered in
  arrival order at the rate the shop chose, never dropped.

Keys: the client (`InboundMessage.client`) is the visitor's network address on the widget and
the visitor's phone number or email address on provider channels (across SMS and WhatsApp).
REST's caller is the shop's own server (it holds the shop's API key) speaking for many
visitors, so REST counts by conversation and shop only. The
conversation is the scoped sender id. Addresses and sender ids enter Redis keys hashed (they
are phone numbers and emails; hashing also bounds the key's length).

With Redis the buckets are shared by every gateway: one Lua script reads, refills and takes
all of a message's buckets atomically, on Redis's clock. Without Redis (embedded storage, one
gateway) they live in the process; when Redis fails the process's own buckets stand in rather
than refusing or waving everything through.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from connectors import metrics
from connectors.errors import RateLimited
from connectors.messages import InboundMessage

log = logging.getLogger(__name__)

# Channels whose visitors connect to us themselves: their network address is the client.
ADDRESSED_BY_NETWORK = ("web",)
PROVIDER_CHANNELS = ("sms", "whatsapp", "email")


@dataclass(frozen=True)
class Bucket:
    key: str
    per_minute: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


def _hashed(value: str) -> str:
    return hashlib.blake2b(value.encode(), digest_size=10).hexdigest()


def buckets_for(inbound: InboundMessage) -> list[Bucket]:
    """The buckets a message takes a token from (rates of 0 are off)."""
    tenant = inbound.tenant
    prefix = f"sb:rl:{tenant.id}"
    client = (inbound.client if inbound.channel in ADDRESSED_BY_NETWORK + PROVIDER_CHANNELS
              else None)
    buckets = [Bucket(f"{prefix}:conv:{_hashed(inbound.sender_id)}", tenant.rate_per_conversation),
               Bucket(f"{prefix}:shop", tenant.rate_per_shop)]
    if client:
        buckets.insert(0, Bucket(f"{prefix}:client:{_hashed(client)}", tenant.rate_per_client))
    return [b for b in buckets if b.per_minute > 0]


# KEYS: the buckets; ARGV[1]: "1" to reserve (take into debt), "0" to take only if all have a
# token; ARGV[2..]: each bucket's rate a minute (= its capacity). Returns the seconds to wait
# as a string (a Lua number would come back truncated to an integer).
TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local reserve = ARGV[1] == '1'
local tokens, wait = {}, 0
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[i + 1])
  local rate = capacity / 60
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local level = tonumber(state[1]) or capacity
  local at = tonumber(state[2]) or now
  level = math.min(capacity, level + math.max(0, now - at) * rate)
  tokens[i] = level
  if level < 1 then wait = math.max(wait, (1 - level) / rate) end
end
if reserve or wait == 0 then
  for i = 1, #KEYS do
    local capacity = tonumber(ARGV[i + 1])
    local left = tokens[i] - 1
    redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'at', tostring(now))
    redis.call('EXPIRE', KEYS[i], math.ceil((capacity - left) * 60 / capacity) + 60)
  end
end
return tostring(wait)
"""


class MemoryBuckets:
    """The same buckets in this process (one gateway, or Redis failing)."""

    FORGET_AFTER = 10_000  # takes between scans for full buckets (which need no entry)

    def __init__(self) -> None:
        self._levels: dict[str, tuple[float, float, int]] = {}  # key -> (tokens, at, rate)
        self._takes = 0

    def take(self, buckets: list[Bucket], reserve: bool) -> float:
        now = time.monotonic()
        levels, wait = [], 0.0
        for bucket in buckets:
            level, at, _ = self._levels.get(bucket.key, (float(bucket.per_minute), now, 0))
            level = min(bucket.per_minute, level + (now - at) * bucket.per_second)
            levels.append(level)
            if level < 1:
                wait = max(wait, (1 - level) / bucket.per_second)
        if reserve or wait == 0:
            for bucket, level in zip(buckets, levels, strict=True):
                self._levels[bucket.key] = (level - 1, now, bucket.per_minute)
        self._takes += 1
        if self._takes % self.FORGET_AFTER == 0:
            self._forget_full(now)
        return wait

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled says nothing a missing entry (a full bucket) does not.
        self._levels = {k: (level, at, rate) for k, (level, at, rate) in self._levels.items()
                        if level + (now - at) * rate / 60.0 < rate}


class Limits:
    def __init__(self, redis: Redis | None = None) -> None:
        self._redis = redis
        self._memory = MemoryBuckets()
        self._script = redis.register_script(TAKE_SCRIPT) if redis is not None else None

    async def admit(self, inbound: InboundMessage) -> None:
        """For a message answered within the request: raises RateLimited (429) when any of
        its buckets is empty, taking nothing."""
        wait = await self._take(buckets_for(inbound), reserve=False)
        if wait > 0:
            log.info("rate limited", extra={"tenant_id": inbound.tenant.id,
                                            "channel": inbound.channel,
                                            "retry_after": round(wait, 1)})
            metrics.rate_limited(inbound.channel, "refused")
            raise RateLimited("Too many messages; please wait a moment before writing again.",
                              retry_after=max(1, math.ceil(wait)))

    async def reserve(self, inbound: InboundMessage) -> float:
        """For a provider message (always stored): seconds until it may be answered."""
        wait = await self._take(buckets_for(inbound), reserve=True)
        if wait > 0:
            log.info("provider message deferred", extra={
                "tenant_id": inbound.tenant.id, "channel": inbound.channel,
                "seconds": round(wait, 1)})
            metrics.rate_limited(inbound.channel, "deferred")
        return wait

    async def _take(self, buckets: list[Bucket], reserve: bool) -> float:
        if not buckets:
            return 0.0
        if self._script is not None:
            try:
                answer = await self._script(keys=[b.key for b in buckets],
                                            args=["1" if reserve else "0",
                                                  *(str(b.per_minute) for b in buckets)])
                return float(answer)
            except RedisError as exc:
                log.warning("rate limits fall back to this process",
                            extra={"error": type(exc).__name__})
        return self._memory.take(buckets, reserve)
