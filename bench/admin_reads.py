"""Admin API read latency at 20 concurrent owners while visitors talk to the bot.

Target (issue 13): p95 <= 50 ms for reads at 20 concurrent owners while bench/turns.py runs.
This starts the real stack (tests/integration/stack.py, which also runs the admin service),
plays bench/turns.py's order-status conversations through the gateway the whole time (its own
functions: `run_level` with its 3-turn script, until the reads are done), and has N owners
read the admin API as fast as they get answers: GET /conversations, /conversations/{id},
/analytics/summary, /responses, /knowledge/documents, /settings and /keys, in turn, each
owner starting at a different route. After a warm-up, reads are timed for --seconds; p50, p95
and p99 are printed per route and overall, with the turns' latency over the same time.

Usage, from the repository root:
    .venv/bin/python bench/admin_reads.py                       # embedded SQLite stack
    .venv/bin/python bench/admin_reads.py --postgres postgresql://postgres@127.0.0.1:5432/test \\
        --redis redis://127.0.0.1:6379/0                        # PostgreSQL + Redis stack
Options: --owners 20 --think 0 --seconds 60 --warmup 10 --visitors 20 --timeout 900
(--think 1: each owner reads once a second, as a person clicking through the pages would;
the default 0 reads back to back, the admin process's saturation)
Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.turns import (  # noqa: E402
    LOOPBACK,
    THREE_TURNS,
    Stats,
    Target,
    pct,
    run_before,
    run_level,
    start_stack,
    stop_stack,
)

log = logging.getLogger("bench.admin_reads")
TARGET_P95_MS = 50.0
ROUTES = ("/conversations", "/conversations/{id}", "/analytics/summary", "/responses",
          "/knowledge/documents", "/settings", "/keys")


@dataclass
class Reads:
    ms: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROUTES})
    errors: dict[str, int] = field(default_factory=lambda: {r: 0 for r in ROUTES})
    recording: bool = False

    def add(self, route: str, elapsed: float, ok: bool) -> None:
        if not self.recording:
            return
        if ok:
            self.ms[route].append(elapsed)
        else:
            self.errors[route] += 1


def request_of(route: str, conversation_ids: list[str], turn: int) -> tuple[str, dict[str, str]]:
    """The URL path and query of one read of `route`."""
    if route == "/conversations/{id}":
        return f"/conversations/{conversation_ids[turn % len(conversation_ids)]}", {}
    if route == "/analytics/summary":
        today = date.today()
        return route, {"from": (today - timedelta(days=30)).isoformat(), "to": today.isoformat()}
    return route, {}


async def owner(client: httpx.AsyncClient, api: str, key: str, start: int, reads: Reads,
                conversation_ids: list[str], think: float, stop: asyncio.Event) -> None:
    """One owner reading route after route until `stop`, `think` seconds between reads."""
    headers = {"Authorization": f"Bearer {key}"}
    turn = start
    while not stop.is_set():
        route = ROUTES[turn % len(ROUTES)]
        turn += 1
        if route == "/conversations/{id}" and not conversation_ids:
            continue
        path, params = request_of(route, conversation_ids, turn)
        started = time.perf_counter()
        try:
            response = await client.get(api + path, params=params, headers=headers)
            ok = response.status_code == 200
            if not ok:
                log.warning("GET %s: %d %.200s", path, response.status_code, response.text)
        except httpx.HTTPError as exc:
            log.warning("GET %s failed: %r", path, exc)
            ok = False
        reads.add(route, (time.perf_counter() - started) * 1000, ok)
        if think > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), think)


async def conversation_ids_of(client: httpx.AsyncClient, api: str, key: str) -> list[str]:
    response = await client.get(f"{api}/conversations", params={"page_size": 50},
                                headers={"Authorization": f"Bearer {key}"})
    if response.status_code != 200:
        log.warning("GET /conversations: %d %.200s", response.status_code, response.text)
        return []
    return [str(item["id"]) for item in response.json().get("items", [])]


async def visitors(client: httpx.AsyncClient, target: Target, concurrency: int, stats: Stats,
                   stop: asyncio.Event) -> None:
    """bench/turns.py's conversations through the gateway, batch after batch, until `stop`."""
    while not stop.is_set():
        batch = await run_level(client, target, THREE_TURNS, concurrency, concurrency)
        stats.turns += batch.turns
        stats.errors += batch.errors
        stats.ms += batch.ms


async def bench(args: argparse.Namespace, gateway: str, admin: str, rest_key: str,
                owner_key: str) -> bool:
    api = f"{admin}/api/v1"
    target = Target("gateway", f"{gateway}/channels/demo/rest/webhook", direct=False,
                    headers={"Authorization": f"Bearer {rest_key}"})
    limits = httpx.Limits(max_connections=args.owners + args.visitors + 10,
                          max_keepalive_connections=args.owners + args.visitors + 10)
    async with (httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as turns_client,
                httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as reads_client):
        log.info("seeding: %d conversations through the gateway", args.visitors)
        seeded = await run_level(turns_client, target, THREE_TURNS, args.visitors, args.visitors)
        log.info("seeded: %d turns, %d errors", seeded.turns, seeded.errors)
        conversation_ids = await conversation_ids_of(reads_client, api, owner_key)
        log.info("%d conversations listed for /conversations/{id}", len(conversation_ids))

        stop, turns, reads = asyncio.Event(), Stats(), Reads()
        load = asyncio.create_task(visitors(turns_client, target, args.visitors, turns, stop))
        owners = [asyncio.create_task(owner(reads_client, api, owner_key, i, reads,
                                            conversation_ids, args.think, stop))
                  for i in range(args.owners)]
        log.info("warm-up: %d owners reading, %d visitors talking, %.0f s", args.owners,
                 args.visitors, args.warmup)
        await asyncio.sleep(args.warmup)
        reads.recording, turns_before = True, Stats(turns.turns, turns.errors)
        ms_before = len(turns.ms)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.seconds:
            await asyncio.sleep(min(5.0, args.seconds - elapsed))
            done = sum(len(v) for v in reads.ms.values())
            log.info("%3.0f s: %d reads (%.0f/s), p95 so far %.1f ms; %d turns, %d errors",
                     time.monotonic() - started, done, done / max(1e-9, time.monotonic()
                                                                   - started),
                     pct([m for v in reads.ms.values() for m in v], 95),
                     turns.turns - turns_before.turns, turns.errors - turns_before.errors)
        seconds = time.monotonic() - started
        reads.recording = False
        stop.set()
        await asyncio.gather(*owners)
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load

    every = [m for v in reads.ms.values() for m in v]
    pause = f"{args.think:g} s between reads" if args.think > 0 else "no pause between reads"
    print(f"\nAdmin API reads: {args.owners} owners ({pause}) for {seconds:.0f} s while "
          f"{args.visitors} visitors talk to the bot (ms)")
    print(f"{'route':<24} {'reads':>6} {'errors':>6} {'p50':>7} {'p95':>7} {'p99':>7}")
    for route in ROUTES:
        values = reads.ms[route]
        print(f"{route:<24} {len(values):>6} {reads.errors[route]:>6} {pct(values, 50):>7.1f} "
              f"{pct(values, 95):>7.1f} {pct(values, 99):>7.1f}")
    print(f"{'all reads':<24} {len(every):>6} {sum(reads.errors.values()):>6} "
          f"{pct(every, 50):>7.1f} {pct(every, 95):>7.1f} {pct(every, 99):>7.1f}"
          f"   ({len(every) / seconds:.0f} reads/s)")
    during = turns.ms[ms_before:]
    print(f"{'turns (gateway)':<24} {len(during):>6} {turns.errors - turns_before.errors:>6} "
          f"{pct(during, 50):>7.0f} {pct(during, 95):>7.0f} {pct(during, 99):>7.0f}"
          f"   ({len(during) / seconds:.1f} turns/s)")
    passed = bool(every) and pct(every, 95) <= TARGET_P95_MS
    print(f"target: reads p95 <= {TARGET_P95_MS:.0f} ms: "
          f"{'met' if passed else 'NOT met'} ({pct(every, 95):.1f} ms)")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, default=20, help="concurrent owners reading")
    parser.add_argument("--visitors", type=int, default=20,
                        help="concurrent conversations through the gateway meanwhile")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds each owner waits between reads (0: as fast as answered)")
    parser.add_argument("--seconds", type=float, default=60, help="timed reads")
    parser.add_argument("--warmup", type=float, default=10, help="untimed reads first")
    parser.add_argument("--timeout", type=float, default=900, help="global limit in seconds")
    parser.add_argument("--postgres", help="own stack on this PostgreSQL URL (with --redis)")
    parser.add_argument("--redis", help="own stack with this Redis URL (with --postgres)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("postgres", "redis"):
        if getattr(args, name) and urlparse(getattr(args, name)).hostname not in LOOPBACK:
            parser.error(f"--{name} must be a loopback address")
    if bool(args.postgres) != bool(args.redis):
        parser.error("--postgres and --redis go together")
    deadline = time.monotonic() + args.timeout
    stack, finished = start_stack(args, deadline), False
    try:
        run_before(deadline, args.timeout, bench(args, stack.gateway, stack.admin,
                                                 stack.rest_key, stack.admin_key("owner")))
        finished = True
    finally:
        stop_stack(stack, finished)

if __name__ == "__main__":
    main()
