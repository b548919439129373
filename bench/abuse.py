"""One client floods one shop while 40 visitors use another: the other shop's reply latency.

Two shops like the demo shop run on one stack: "flooded" with the default rate limits (30
messages a minute per client address, 20 per conversation, 600 per shop) and "calm", whose 40
widget visitors play the order-status conversation in a loop, each waiting for the bot's reply
before writing again (they all come from 127.0.0.1 here and write ~20 turns a second, so
"calm" has no limits).
The calm shop is measured three times for --seconds each: alone, while one client (another
process, so its loop does not slow the visitors' clients) floods the other shop's widget over
--sockets sockets as fast as the gateway answers, and alone again. Target: the calm shop's
reply p95 under the flood within 20 % of its value alone (the mean of both runs alone).

Usage, from the repository root (starts its own stack in a temp dir, embedded storage):
    .venv/bin/python bench/abuse.py [--visitors 40] [--seconds 30] [--sockets 8]
    .venv/bin/python bench/abuse.py --postgres postgresql://postgres@127.0.0.1:5432/test \\
        --redis redis://127.0.0.1:6379/0
Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.turns import pct  # noqa: E402
from tests.integration.stack import MODEL, Stack  # noqa: E402

log = logging.getLogger("bench.abuse")

SCRIPT = ("where is my order?", "#1001", "alex@example.com")


@dataclass
class Run:
    replies: list[float] = field(default_factory=list)  # ms, message sent -> "done"
    errors: Counter[str] = field(default_factory=Counter)


async def visitor(url: str, until: float, run: Run) -> None:
    try:
        async with websockets.connect(url, open_timeout=30) as ws:
            await ws.send(json.dumps({"type": "hello", "token": None}))
            await ws.recv()
            turn = 0
            while time.monotonic() < until:
                started = time.perf_counter()
                await ws.send(json.dumps({"type": "message", "text": SCRIPT[turn % 3],
                                          "id": uuid.uuid4().hex[:12]}))
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if frame["type"] == "error":
                        run.errors[frame.get("code", "error")] += 1
                    elif frame["type"] == "done":
                        run.replies.append((time.perf_counter() - started) * 1000)
                        break
                turn += 1
    except (TimeoutError, OSError, websockets.WebSocketException) as exc:
        run.errors[type(exc).__name__] += 1


async def visitors(url: str, n: int, seconds: float) -> Run:
    run = Run()
    until = time.monotonic() + seconds
    await asyncio.gather(*(visitor(url, until, run) for _ in range(n)))
    return run


async def flood(url: str, seconds: float, sockets: int) -> Counter[str]:
    """One client's sockets sending as fast as they are answered."""
    seen: Counter[str] = Counter()
    until = time.monotonic() + seconds

    async def one() -> None:
        async with websockets.connect(url, open_timeout=30) as ws:
            await ws.send(json.dumps({"type": "hello", "token": None}))
            await ws.recv()
            while time.monotonic() < until:
                await ws.send(json.dumps({"type": "message", "text": "where is my order?",
                                          "id": uuid.uuid4().hex[:12]}))
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if frame["type"] == "done":
                        seen["answered" if frame.get("ok", True) else "refused"] += 1
                        break

    await asyncio.gather(*(one() for _ in range(sockets)))
    return seen


def start_flood(url: str, seconds: float, sockets: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "flood", url, str(seconds), str(sockets)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)


def flood_main(argv: list[str]) -> None:
    url, seconds, sockets = argv[0], float(argv[1]), int(argv[2])
    print(json.dumps(asyncio.run(flood(url, seconds, sockets))))


def report(name: str, run: Run, seconds: float) -> None:
    print(f"{name:14} {len(run.replies):6d} {len(run.replies) / seconds:7.1f} "
          f"{pct(run.replies, 50):9.0f} {pct(run.replies, 95):9.0f} {dict(run.errors) or ''}")


def main() -> None:
    if sys.argv[1:2] == ["flood"]:
        flood_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--sockets", type=int, default=8, help="the flooding client's sockets")
    parser.add_argument("--postgres", help="PostgreSQL URL (with --redis); our tables are reset")
    parser.add_argument("--redis", help="Redis URL (with --postgres)")
    parser.add_argument("--keep", action="store_true", help="keep the stack's logs and files")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if bool(args.postgres) != bool(args.redis):
        parser.error("--postgres and --redis go together")
    assert MODEL.exists(), "no trained model: run `make train`"
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-abuse-")), database_url=args.postgres,
                  redis_url=args.redis)
    stack.extra_env.update(LOG_LEVEL="INFO" if args.keep else "WARNING")
    if args.postgres:
        from tests.databases import drop_our_tables
        drop_our_tables(args.postgres)
    try:
        log.info("starting stack in %s", stack.var_dir)
        stack.start()
        stack.add_shop_like_demo("flooded", "pk_flooded")
        # 40 visitors from one address, ~20 turns a second, each as fast as it is answered:
        # over a default shop's 600 a minute and near 20 a minute per conversation.
        stack.add_shop_like_demo("calm", "pk_calm", rate_per_client=0,
                                 rate_per_conversation=0, rate_per_shop=0)
        ws = stack.gateway.replace("http", "ws")
        calm = f"{ws}/channels/calm/web/socket?key=pk_calm"
        flooded = f"{ws}/channels/flooded/web/socket?key=pk_flooded"
        log.info("warming up")
        asyncio.run(visitors(calm, args.visitors, 10))
        log.info("calm shop alone")
        alone = asyncio.run(visitors(calm, args.visitors, args.seconds))
        log.info("calm shop while the other is flooded")
        flooding = start_flood(flooded, args.seconds + 2, args.sockets)
        time.sleep(1.0)  # the flood is on before the visitors come
        under = asyncio.run(visitors(calm, args.visitors, args.seconds))
        out, _ = flooding.communicate(timeout=120)
        flood_seen = json.loads(out or "{}")
        log.info("calm shop alone again")
        again = asyncio.run(visitors(calm, args.visitors, args.seconds))

        print(f"\ncalm shop: {args.visitors} widget visitors, {args.seconds:.0f} s a run; "
              f"flooded shop: one client, {args.sockets} sockets; "
              f"{'postgres+redis' if args.postgres else 'embedded'} storage; ms")
        print(f"{'run':14} {'turns':>6} {'turns/s':>7} {'reply p50':>9} {'reply p95':>9} errors")
        report("alone", alone, args.seconds)
        report("under flood", under, args.seconds)
        report("alone again", again, args.seconds)
        base = (pct(alone.replies, 95) + pct(again.replies, 95)) / 2
        ratio = pct(under.replies, 95) / base if base else float("nan")
        refused, answered = flood_seen.get("refused", 0), flood_seen.get("answered", 0)
        print(f"\nflood: {refused + answered} messages in {args.seconds + 2:.0f} s, "
              f"{answered} answered, {refused} refused (rate_limited)")
        print(f"calm reply p95 under the flood / alone: {ratio:.2f} "
              f"({'within' if ratio <= 1.2 else 'beyond'} the 20 % target)")
    finally:
        stack.stop()
        if args.keep:
            log.info("stack files kept in %s", stack.var_dir)
        else:
            shutil.rmtree(stack.var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
