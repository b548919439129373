"""The public edge under abuse and crashes, on the real stack (embedded; PostgreSQL + Redis):

- a gateway killed (SIGKILL) with acknowledged SMS in flight and started again at once answers
  every one of them within a minute (leases run out, the new process's sweep takes them over);
- one client flooding one shop's widget gets its messages refused (rate_limited) while every
  turn of another shop's visitors is answered (how fast: bench/abuse.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections import Counter

import httpx
import pytest

from bench import abuse
from bench.turns import pct
from devtools import simulate
from tests.fakes.twilio_server import TwilioFake
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

SCRIPT = abuse.SCRIPT


async def post_all(requests: list[simulate.SignedRequest]) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*(client.post(r.url, content=r.body, headers=r.headers)
                                         for r in requests))
    return [a.status_code for a in answers]


def replied(twilio: TwilioFake, since: int) -> Counter[str]:
    return Counter(m.to for m in twilio.sent[since:])


def test_a_gateway_killed_with_messages_in_flight_answers_them_after_a_restart(
        stack: Stack, twilio_api: TwilioFake) -> None:
    creds = stack.demo_credentials()["twilio"]
    numbers = [f"+1555{secrets.randbelow(10**7):07d}" for _ in range(30)]
    since = len(twilio_api.sent)
    requests = [simulate.twilio_message(stack.gateway, "demo", creds, n, SCRIPT[0])
                for n in numbers]
    assert asyncio.run(post_all(requests)) == [200] * len(numbers)  # all acknowledged
    stack.kill_process("gateway")
    killed_at = time.monotonic()
    before_kill = set(replied(twilio_api, since))
    stack.restart_gateway()
    while time.monotonic() < killed_at + 60 and set(replied(twilio_api, since)) < set(numbers):
        time.sleep(0.5)
    answered = replied(twilio_api, since)
    took = time.monotonic() - killed_at
    # The crash did leave messages in flight (else this test tested nothing) ...
    assert len(before_kill) < len(numbers)
    # ... and every acknowledged message got its answer within the minute.
    assert sorted(set(numbers) - set(answered)) == [], f"after {took:.0f} s"
    print(f"\n{len(numbers) - len(before_kill)} of {len(numbers)} in flight at the kill, "
          f"all answered {took:.0f} s after it; replies beyond one: "
          f"{sum(n - 1 for n in answered.values())}")


def test_a_flood_on_one_shop_leaves_another_shops_turns_answered(stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    stack.add_shop_like_demo(f"flooded-{run}", f"pk_flooded_{run}")
    # The calm shop's visitors all come from 127.0.0.1 and write as fast as they are answered
    # (a conversation here is faster than 20 messages a minute): no limits for it.
    stack.add_shop_like_demo(f"calm-{run}", f"pk_calm_{run}", rate_per_client=0,
                             rate_per_conversation=0, rate_per_shop=0)
    ws = stack.gateway.replace("http", "ws")
    calm = f"{ws}/channels/calm-{run}/web/socket?key=pk_calm_{run}"
    flooded = f"{ws}/channels/flooded-{run}/web/socket?key=pk_flooded_{run}"

    # Seconds each, kept short (the suite's time): 8 visitors answered as fast as they write
    # still give hundreds of calm turns alone and under the flood.
    asyncio.run(abuse.visitors(calm, 8, 3))  # warm: the shop's settings, Rasa's trackers
    alone = asyncio.run(abuse.visitors(calm, 8, 8))
    # The flood comes from another process, so its loop does not slow the visitors' clients.
    flooding = abuse.start_flood(flooded, 10, 8)
    time.sleep(1.0)
    under = asyncio.run(abuse.visitors(calm, 8, 8))
    out, _ = flooding.communicate(timeout=120)
    flood = json.loads(out)

    assert not alone.errors and not under.errors  # every calm turn answered
    # The flood was held to its client's rate: a minute's worth (30) and a trickle after; its
    # sockets, refused, were left unread for their Retry-After.
    assert flood["refused"] > 0 and flood["answered"] <= 40, flood
    # How fast the calm shop's turns stay under the flood is bench/abuse.py's to measure (a
    # timing here failed on a machine at half speed with the whole suite beside it).
    print(f"\ncalm shop reply p95 {pct(alone.replies, 95):.0f} ms alone, "
          f"{pct(under.replies, 95):.0f} ms under the flood ({flood})")

