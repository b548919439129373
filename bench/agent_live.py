"""Agents watching the inbox under load: how soon a visitor's message shows in their streams.

`bench/channels.py --agents 50` uses this module: 50 agents of the demo shop hold
GET /api/v1/events open (server-sent events, as the inbox page's EventSource does) in a process
of their own (so the 200 visitors' client work in the benchmark's process does not delay
them, as it would not delay a browser on an agent's desk), while visitors who asked for a
person keep writing on SMS, WhatsApp (Twilio and Meta) and email. Latency = the moment an
event line arrives at an agent's stream minus the moment the visitor's webhook was
acknowledged (both CLOCK_MONOTONIC, one host), for every agent and every event:

- `message.visitor`: a visitor wrote in a conversation a person owns (published by the
  gateway); matched by the message's text, which carries a unique reference;
- `handoff.requested`: the visitor asked for a person (published by the action server during
  the bot's turn, so this one includes the turn: NLU, policies, the action); matched by the
  conversation's opaque id.

Events that never reached an agent within the grace period after the run count as missed.

Measured 2026-11-28 (`--visitors 200 --seconds 60 --agents 50`, 20 escalated visitors writing
every 2 s; 2 cores shared with other test runs, load average 5-7, the 200 visitors' replies at
p50 ~10 s): message.visitor p50 71 ms, p95 261 ms, max 589 ms embedded (HTTP relay to the
admin service), p50 17 ms, p95 61 ms, max 256 ms on PostgreSQL + Redis (pub/sub); none missed
out of 25,600 and 24,500 arrivals. Target: p95 <= 500 ms. Before the gateway announced a
message on acceptance (it did after the message's bot turn) the same run gave p50 48 s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as EventType
from typing import Any

import aiohttp

log = logging.getLogger("bench.agent_live")

WATCHED = ("message.visitor", "handoff.requested")
FLUSH_SECONDS = 0.05  # how often the agents' process hands its arrivals over


# -- the agents' process ---------------------------------------------------------------------
def key_of(kind: str, data: dict[str, Any]) -> str:
    """What ties an event to the webhook that caused it."""
    if kind == "message.visitor":
        return "message.visitor|" + str(data.get("text") or "").strip()
    return f"{kind}|{data.get('conversation_id')}"


async def _agent(n: int, http: aiohttp.ClientSession, url: str, key: str,
                 out: list[tuple[int, str, float]], connected: list[int],
                 stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    while not stop.is_set():
        try:
            async with http.get(url, headers=headers) as response:
                if response.status != 200:
                    log.warning("agent %d: the stream answered %d", n, response.status)
                    await asyncio.sleep(1.0)
                    continue
                connected[n] = 1
                kind, data = "", ""
                async for raw in response.content:
                    now = time.monotonic()
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif not line and data:
                        if kind in WATCHED:
                            out.append((n, key_of(kind, json.loads(data)), now))
                        kind, data = "", ""
                connected[n] = 0
        except (aiohttp.ClientError, TimeoutError) as exc:
            connected[n] = 0
            log.warning("agent %d: stream lost (%s); reconnecting", n, type(exc).__name__)
            await asyncio.sleep(1.0)


async def _agents(admin: str, key: str, count: int, arrivals: Any, ready: EventType,
                  stopped: EventType) -> None:
    out: list[tuple[int, str, float]] = []
    connected = [0] * count
    stop = asyncio.Event()
    url = f"{admin}/api/v1/events"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=timeout) as http:
        tasks = [asyncio.create_task(_agent(n, http, url, key, out, connected, stop))
                 for n in range(count)]
        while not stopped.is_set():
            await asyncio.sleep(FLUSH_SECONDS)
            if sum(connected) == count and not ready.is_set():
                ready.set()
            if out:
                batch, out[:] = list(out), []
                arrivals.put(("events", batch))
            arrivals.put(("connected", sum(connected)))
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    arrivals.put(("done", None))


def agents_main(admin: str, key: str, count: int, arrivals: Any, ready: EventType,
                stopped: EventType) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agents %(message)s")
    asyncio.run(_agents(admin, key, count, arrivals, ready, stopped))


# -- the benchmark's side --------------------------------------------------------------------
@dataclass
class Watch:
    """Acknowledgements (what the visitors did) and arrivals (what the agents saw)."""

    agents: int
    acks: dict[str, float] = field(default_factory=dict)  # event key -> webhook acknowledged
    arrivals: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    connected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged(self, kind: str, detail: str, at: float) -> None:
        with self.lock:
            self.acks[f"{kind}|{detail.strip()}"] = at

    def arrived(self, batch: list[tuple[int, str, float]]) -> None:
        with self.lock:
            for agent, key, at in batch:
                self.arrivals[key].setdefault(agent, at)  # the first copy an agent got

    def latencies(self, kind: str, since: float = 0.0) -> list[float]:
        """ms from acknowledgement to arrival, per agent and event (acknowledged >= since)."""
        with self.lock:
            return [(at - acked) * 1000 for key, acked in self.acks.items()
                    if key.startswith(kind + "|") and acked >= since
                    for at in self.arrivals.get(key, {}).values()]

    def expected(self, kind: str) -> int:
        with self.lock:
            return sum(1 for key in self.acks if key.startswith(kind + "|")) * self.agents

    def missed(self, kind: str) -> int:
        return self.expected(kind) - len(self.latencies(kind))


class Agents:
    """`count` agents' streams in a child process; their arrivals flow into a Watch."""

    def __init__(self, admin: str, key: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.watch = Watch(count)
        self._arrivals = context.Queue()
        self._ready = context.Event()
        self._stopped = context.Event()
        self._process = context.Process(
            target=agents_main, name="agents", daemon=True,
            args=(admin, key, count, self._arrivals, self._ready, self._stopped))
        self._drain = threading.Thread(target=self._drain_arrivals, daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self._process.start()
        self._drain.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"only {self.watch.connected} of {self.watch.agents} agents' "
                               f"streams connected within {timeout:.0f} s")

    def _drain_arrivals(self) -> None:
        while True:
            try:
                what, value = self._arrivals.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    return
                continue
            if what == "events":
                self.watch.arrived(value)
            elif what == "connected":
                self.watch.connected = value
            else:
                return

    def stop(self) -> None:
        self._stopped.set()
        self._drain.join(timeout=10)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
