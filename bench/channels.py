"""Many visitors on every channel at once: webhook acknowledgement, reply latency, lost and
duplicated messages.

Visitors on SMS and WhatsApp (Twilio), WhatsApp (Meta Cloud API), email (Mailgun route) and the
web widget (WebSocket) play the demo shop's order-status conversation in a loop for the given
time, each waiting for the bot's reply before it writes again. Provider webhooks are signed as
the providers sign them (devtools/simulate.py); replies go out to local fakes of Twilio's and
Meta's APIs and to a real SMTP server (aiosmtpd), where the benchmark watches for them. Every
tenth webhook is delivered twice at once, as providers do on retries: the second copy must be
acknowledged and dropped.

Columns: ack = the webhook's answer (web: the typing frame); reply = message sent until its
reply reached the provider fake (web: the turn's "done" frame); late = no reply within 60 s;
after the run the benchmark waits up to 60 s more, then lost = acknowledged messages that
never got a reply and dup = replies beyond one per acknowledged message, per visitor.

With --kill-gateway the gateway process is killed (SIGKILL, as a crash or an OOM kill) halfway
through the run and started again at once: acknowledged messages it held are answered by the
new process once their leases run out (connectors/leases.py); web visitors whose socket died
count as late and reconnect. Its visitors all come from 127.0.0.1 and write to one shop, so the
demo shop's rate limits are raised for the run (a real shop of this size would set its own).

With --agents N (bench/agent_live.py) N agents of the demo shop hold the live stream
GET /api/v1/events open while --escalated more visitors (SMS, WhatsApp, Meta, email) ask for a
person and then keep writing every --think seconds; the report adds, per live event kind, the
time from the visitor's webhook being acknowledged to the event arriving at each agent's
stream (target: message.visitor p95 <= 500 ms with 50 agents and 200 visitors).

Usage, from the repository root (starts its own stack in a temp dir, embedded storage):
    .venv/bin/python bench/channels.py [--visitors 200] [--seconds 60] [--kill-gateway]
    .venv/bin/python bench/channels.py --visitors 200 --agents 50 [--escalated 20]
    .venv/bin/python bench/channels.py --postgres postgresql://postgres@127.0.0.1:5432/test \\
        --redis redis://127.0.0.1:6379/0
Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.agent_live import Agents, Watch  # noqa: E402
from bench.turns import pct  # noqa: E402
from core.sender_ids import sender_id  # noqa: E402
from devtools import simulate  # noqa: E402
from devtools.demo_shop import DEMO_TENANT_ID, DEMO_WIDGET_KEY  # noqa: E402
from tests.fakes.graph_server import GraphFake  # noqa: E402
from tests.fakes.twilio_server import TwilioFake  # noqa: E402
from tests.integration.mailbox import Mailbox  # noqa: E402
from tests.integration.stack import MODEL, Stack, free_port  # noqa: E402

log = logging.getLogger("bench.channels")

SCRIPT = ("where is my order?", "#1001", "alex@example.com")
EMAIL = "Hi,\n\nWhere is order #1001? My email is alex@example.com\n\nThanks,\nAlex"
MIX = {"sms": 0.25, "whatsapp": 0.2, "meta": 0.2, "email": 0.15, "web": 0.2}
REPLY_TIMEOUT = 60.0


@dataclass
class Channel:
    acks: list[float] = field(default_factory=list)  # ms, webhook answered
    replies: list[float] = field(default_factory=list)  # ms, sent -> reply seen
    sent: int = 0
    late: int = 0  # no reply within REPLY_TIMEOUT (web: turn or socket lost)
    sent_to: Counter = field(default_factory=Counter)  # acknowledged messages per address
    duplicates_injected: int = 0
    errors: Counter = field(default_factory=Counter)


class Replies:
    """Counts replies per recipient as the fakes record them (scanned from a thread) and wakes
    the visitors waiting for them (no polling: the benchmark must not be what is slow)."""

    def __init__(self, twilio: TwilioFake, graph: GraphFake, mailbox: Mailbox) -> None:
        self.twilio, self.graph, self.mailbox = twilio, graph, mailbox
        self.counts: Counter = Counter()
        self._seen = [0, 0, 0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._scan, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}

    def _scan(self) -> None:
        while not self._stop.wait(0.01):
            arrived: list[str] = []
            sources: tuple[tuple[list[Any], Callable[[Any], str]], ...] = (
                (self.twilio.sent, lambda m: m.to.removeprefix("whatsapp:")),
                (self.graph.sent, lambda s: "+" + s.body["to"]),
                (self.mailbox.messages, lambda m: str(m["To"])))
            for i, (items, key) in enumerate(sources):
                new = items[self._seen[i]:]
                self._seen[i] += len(new)
                arrived += [key(item) for item in new]
            if arrived and self._loop is not None:
                self._loop.call_soon_threadsafe(self._arrived, arrived)

    def _arrived(self, addresses: list[str]) -> None:
        for address in addresses:
            self.counts[address] += 1
            waiting = self._waiting.get(address, [])
            for expected, future in list(waiting):
                if self.counts[address] >= expected and not future.done():
                    future.set_result(None)
                    waiting.remove((expected, future))

    async def wait(self, address: str, expected: int, timeout: float) -> bool:
        """True once `address` has `expected` replies; False after `timeout` seconds."""
        if self.counts[address] >= expected:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (expected, future)
        self._waiting.setdefault(address, []).append(entry)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            if entry in self._waiting.get(address, []):
                self._waiting[address].remove(entry)
            return False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def post(http: aiohttp.ClientSession, request: simulate.SignedRequest) -> int:
    async with http.post(request.url, data=request.body, headers=request.headers) as response:
        await response.read()
        return response.status


def provider_request(kind: str, stack: Stack, creds: dict[str, Any], address: str, text: str,
                     email_body: str | None = None) -> simulate.SignedRequest:
    """One signed webhook of `kind` (sms, whatsapp, meta, email) from `address`."""
    if kind in ("sms", "whatsapp"):
        return simulate.twilio_message(stack.gateway, "demo", creds["twilio"], address, text,
                                       whatsapp=kind == "whatsapp")
    if kind == "meta":
        return simulate.meta_message(stack.gateway, "demo", creds["meta_whatsapp"], address, text)
    return simulate.mailgun_message(stack.gateway, "demo", creds["email"], address, "Order",
                                    email_body or text)


async def provider_visitor(kind: str, stack: Stack, creds: dict[str, Any],
                           http: aiohttp.ClientSession, replies: Replies, stats: Channel,
                           until: float, n: int) -> None:
    address = (f"visitor{n}-{secrets.token_hex(3)}@example.net" if kind == "email"
               else "+1555" + f"{secrets.randbelow(10**7):07d}")
    turn, answered = 0, 0
    while time.monotonic() < until:
        request = provider_request(kind, stack, creds, address, SCRIPT[turn % len(SCRIPT)],
                                   EMAIL)
        copies = 2 if (stats.sent % 10) == 9 else 1
        stats.duplicates_injected += copies - 1
        started = time.perf_counter()
        try:
            answers = await asyncio.gather(*(post(http, request) for _ in range(copies)))
        except (TimeoutError, aiohttp.ClientError) as exc:
            stats.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
            continue
        stats.acks.append((time.perf_counter() - started) * 1000)
        stats.sent += 1
        refused = [status for status in answers if status != 200]
        for code in refused:
            stats.errors[f"HTTP {code}"] += 1
        if len(refused) == copies:  # no copy got through: the provider would retry later
            continue
        answered += 1
        stats.sent_to[address] += 1
        if await replies.wait(address, answered, REPLY_TIMEOUT):
            stats.replies.append((time.perf_counter() - started) * 1000)
        else:
            stats.late += 1
            answered = max(answered, replies.counts[address])
        turn += 1


ASK_FOR_PERSON = "I want to talk to a person"
ESCALATED_KINDS = ("sms", "whatsapp", "meta", "email")
SENDER_CHANNEL = {"sms": "sms", "whatsapp": "whatsapp", "meta": "whatsapp", "email": "email"}


async def escalated_visitor(kind: str, stack: Stack, creds: dict[str, Any],
                            http: aiohttp.ClientSession, replies: Replies, stats: Channel,
                            watch: Watch, until: float, n: int, think: float) -> None:
    """Asks for a person, then writes every `think` seconds in the conversation a person now
    owns (no bot reply comes); each acknowledged webhook is a live event the agents await."""
    address = (f"waiting{n}-{secrets.token_hex(3)}@example.net" if kind == "email"
               else "+1555" + f"{secrets.randbelow(10**7):07d}")
    conversation = stack.conversation_id(
        DEMO_TENANT_ID, sender_id(DEMO_TENANT_ID, SENDER_CHANNEL[kind], address))
    turn = 0
    while time.monotonic() < until:
        text = ASK_FOR_PERSON if turn == 0 else f"any news about my parcel? (ref {n}-{turn})"
        started = time.perf_counter()
        try:
            status = await post(http, provider_request(kind, stack, creds, address, text))
        except (TimeoutError, aiohttp.ClientError) as exc:
            stats.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
            continue
        acked = time.monotonic()
        stats.acks.append((time.perf_counter() - started) * 1000)
        stats.sent += 1
        if status != 200:
            stats.errors[f"HTTP {status}"] += 1
            await asyncio.sleep(think)
            continue
        if turn == 0:
            watch.acknowledged("handoff.requested", conversation, acked)
            # The bot's announcement; from then on a person owns the conversation.
            if not await replies.wait(address, 1, REPLY_TIMEOUT):
                stats.late += 1
        else:
            watch.acknowledged("message.visitor", text, acked)
        turn += 1
        await asyncio.sleep(think)


async def progress(watch: Watch, until: float, every: float = 5.0) -> None:
    """The agents' view so far, every few seconds, on stderr."""
    started = time.monotonic()
    while time.monotonic() < until:
        await asyncio.sleep(every)
        recent = watch.latencies("message.visitor", since=time.monotonic() - every - 2)
        log.info("t=%3.0fs agents connected %d/%d; message.visitor seen %d of %d expected, "
                 "last %.0f s p50 %.0f ms p95 %.0f ms; handoff.requested seen %d of %d",
                 time.monotonic() - started, watch.connected, watch.agents,
                 len(watch.latencies("message.visitor")), watch.expected("message.visitor"),
                 every, pct(recent, 50), pct(recent, 95),
                 len(watch.latencies("handoff.requested")), watch.expected("handoff.requested"))


async def web_visitor(stack: Stack, stats: Channel, until: float) -> None:
    """A widget visitor; after a lost socket (the gateway killed) a new one, as the widget
    reconnects."""
    while time.monotonic() < until:
        await web_session(stack, stats, until)
        await asyncio.sleep(1.0)


async def web_session(stack: Stack, stats: Channel, until: float) -> None:
    url = (stack.gateway.replace("http", "ws") +
           f"/channels/demo/web/socket?key={DEMO_WIDGET_KEY}")
    waiting = False  # a turn sent and not answered yet
    try:
        async with websockets.connect(url, open_timeout=30, max_size=2**20) as ws:
            await ws.send(json.dumps({"type": "hello", "token": None}))
            await ws.recv()  # session
            turn = 0
            while time.monotonic() < until:
                started = time.perf_counter()
                await ws.send(json.dumps({"type": "message", "text": SCRIPT[turn % 3],
                                          "id": secrets.token_hex(6)}))
                stats.sent += 1
                waiting, got_typing = True, False
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT))
                    if frame["type"] == "typing" and not got_typing:
                        got_typing = True
                        stats.acks.append((time.perf_counter() - started) * 1000)
                    elif frame["type"] == "done":
                        stats.replies.append((time.perf_counter() - started) * 1000)
                        break
                    elif frame["type"] == "error":
                        stats.errors[frame.get("code", "error")] += 1
                        break
                waiting = False
                turn += 1
    except (TimeoutError, OSError, websockets.WebSocketException) as exc:
        stats.late += waiting  # a refused reconnect (gateway down) is no unanswered turn
        stats.errors[type(exc).__name__] += 1


async def run(args: argparse.Namespace, stack: Stack, replies: Replies,
              agents: Agents | None = None) -> dict[str, Channel]:
    replies.start(asyncio.get_running_loop())
    creds = stack.demo_credentials()
    stats = {kind: Channel() for kind in MIX}
    if agents is not None:
        stats["asked"] = Channel()  # the visitors who asked for a person (not in MIX)
    until = time.monotonic() + args.seconds
    # aiohttp rather than httpx here: with hundreds of concurrent requests httpx's own pool
    # costs enough CPU in this process to show up as acknowledgement latency.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as http:
        tasks = []
        kinds = [k for k, share in MIX.items() for _ in range(round(share * args.visitors))]
        for n, kind in enumerate(kinds):
            if kind == "web":
                tasks.append(web_visitor(stack, stats[kind], until))
            else:
                tasks.append(provider_visitor(kind, stack, creds, http, replies, stats[kind],
                                              until, n))
        log.info("%d visitors for %d s: %s", len(tasks), args.seconds, dict(Counter(kinds)))
        if agents is not None:
            for n in range(args.escalated):
                tasks.append(escalated_visitor(
                    ESCALATED_KINDS[n % len(ESCALATED_KINDS)], stack, creds, http, replies,
                    stats["asked"], agents.watch, until, n, args.think))
            tasks.append(progress(agents.watch, until))
            log.info("%d more visitors ask for a person and keep writing every %.1f s; "
                     "%d agents watch", args.escalated, args.think, agents.watch.agents)
        if args.kill_gateway:
            tasks.append(kill_and_restart(stack, args.seconds / 2))
        await asyncio.gather(*tasks)
    # Replies still on their way, and duplicates, would show up now.
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline and any(
            replies.counts[a] < n for s in stats.values() for a, n in s.sent_to.items()):
        await asyncio.sleep(0.5)
    await asyncio.sleep(3)
    replies.stop()
    return stats


async def kill_and_restart(stack: Stack, after: float) -> None:
    await asyncio.sleep(after)
    log.info("killing the gateway (SIGKILL) and starting it again")
    stack.kill_process("gateway")
    started = time.monotonic()
    await asyncio.to_thread(stack.restart_gateway)
    log.info("gateway back after %.1f s", time.monotonic() - started)


def lost(stats: Channel, replies: Replies) -> int:
    """Acknowledged messages that never got a reply (after the grace period)."""
    return sum(max(0, n - replies.counts[a]) for a, n in stats.sent_to.items())


def duplicated(stats: Channel, replies: Replies) -> int:
    """Replies beyond one per acknowledged message."""
    return sum(max(0, replies.counts[a] - n) for a, n in stats.sent_to.items())


def report(stats: dict[str, Channel], replies: Replies) -> None:
    print(f"{'channel':9} {'sent':>6} {'ack p50':>8} {'ack p95':>8} {'reply p50':>10} "
          f"{'reply p95':>10} {'late':>5} {'lost':>5} {'dup':>4} {'dup in':>7} errors")
    for kind, s in stats.items():
        print(f"{kind:9} {s.sent:6d} {pct(s.acks, 50):8.1f} {pct(s.acks, 95):8.1f} "
              f"{pct(s.replies, 50):10.0f} {pct(s.replies, 95):10.0f} {s.late:5d} "
              f"{lost(s, replies):5d} {duplicated(s, replies):4d} "
              f"{s.duplicates_injected:7d} {dict(s.errors) or ''}")


def report_agents(watch: Watch) -> None:
    print(f"\nlive events at {watch.agents} agents' streams: ms from the visitor's webhook "
          "acknowledged to the event at each agent (every agent, every event)")
    print(f"{'event':18} {'events':>7} {'arrivals':>9} {'p50':>7} {'p95':>7} {'max':>7} "
          f"{'missed':>7}")
    for kind in ("message.visitor", "handoff.requested"):
        seen = watch.latencies(kind)
        print(f"{kind:18} {watch.expected(kind) // max(1, watch.agents):7d} {len(seen):9d} "
              f"{pct(seen, 50):7.0f} {pct(seen, 95):7.0f} {max(seen, default=float('nan')):7.0f} "
              f"{watch.missed(kind):7d}")
    print("(handoff.requested is published during the bot's turn, so it includes the turn)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--postgres",
                        help="PostgreSQL URL (with --redis); our tables there are reset")
    parser.add_argument("--redis", help="Redis URL (with --postgres)")
    parser.add_argument("--keep", action="store_true", help="keep the stack's logs and files")
    parser.add_argument("--kill-gateway", action="store_true",
                        help="SIGKILL the gateway halfway through and start it again at once")
    parser.add_argument("--agents", type=int, default=0,
                        help="agents of the demo shop holding /api/v1/events open; with "
                             "--escalated visitors who ask for a person (bench/agent_live.py)")
    parser.add_argument("--escalated", type=int, default=20,
                        help="with --agents: visitors, besides --visitors, who ask for a person "
                             "and keep writing")
    parser.add_argument("--think", type=float, default=2.0,
                        help="with --agents: seconds between an escalated visitor's messages")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if bool(args.postgres) != bool(args.redis):
        parser.error("--postgres and --redis go together")
    assert MODEL.exists(), "no trained model: run `make train`"
    with TwilioFake() as twilio, GraphFake() as graph, Mailbox(free_port()) as mailbox:
        # 200 visitors of one shop from one address: no per-address limit, room for the rest.
        stack = Stack(Path(tempfile.mkdtemp(prefix="bench-channels-")),
                      database_url=args.postgres, redis_url=args.redis,
                      demo_rates={"rate_per_client": 0, "rate_per_conversation": 60,
                                  "rate_per_shop": 0})
        stack.extra_env.update(TWILIO_API_URL=twilio.base_url, GRAPH_API_URL=graph.base_url,
                               SANDBOX_SMTP_PORT=str(mailbox.port),
                               LOG_LEVEL="INFO" if args.keep else "WARNING")
        if args.postgres:
            from tests.databases import drop_our_tables
            drop_our_tables(args.postgres)
        agents: Agents | None = None
        try:
            log.info("starting stack in %s", stack.var_dir)
            stack.start()
            creds = stack.demo_credentials()
            twilio.account_sid = creds["twilio"]["account_sid"]
            twilio.auth_token = creds["twilio"]["auth_token"]
            graph.access_token = creds["meta_whatsapp"]["access_token"]
            graph.phone_number_ids = {creds["meta_whatsapp"]["phone_number_id"]}
            replies = Replies(twilio, graph, mailbox)
            if args.agents:
                agents = Agents(stack.admin, stack.admin_key("agent"), args.agents)
                agents.start()
                log.info("%d agents' live streams connected", args.agents)
            try:
                stats = asyncio.run(run(args, stack, replies, agents))
            finally:
                if agents is not None:
                    time.sleep(5)  # events of the last messages still on their way
                    agents.stop()
            print(f"\n{args.visitors} visitors, {args.seconds:.0f} s, "
                  f"{'postgres+redis' if args.postgres else 'embedded'} storage"
                  f"{', gateway killed and restarted halfway' if args.kill_gateway else ''}; ms")
            report(stats, replies)
            provider = [s for k, s in stats.items() if k not in ("web", "asked")]
            print(f"\nprovider messages acknowledged {sum(s.sent for s in provider)}, "
                  f"lost {sum(lost(s, replies) for s in provider)}, "
                  f"duplicated {sum(duplicated(s, replies) for s in provider)}; "
                  f"web turns without an answer {stats['web'].late}")
            if agents is not None:
                report_agents(agents.watch)
        finally:
            stack.stop()
            if args.keep:
                log.info("stack files kept in %s", stack.var_dir)
            else:
                shutil.rmtree(stack.var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
