"""Throughput and latency of scripted order-status conversations, via the gateway and straight
to Rasa.

Each virtual visitor (unique sender id) plays "where is my order?" -> "#1001" -> "alex@example.com"
and must get the tracking number back (anything else counts as an error). The same turns go
(a) through the gateway's REST channel and (b) straight to Rasa's REST channel with the sender id
and metadata the gateway would send, so (a) - (b) is the gateway's overhead. A sequential
breakdown then times NLU alone (/model/parse), one policy prediction (POST /model/predict on a
conversation's events), each custom-action call of a real conversation replayed against the action
server, Rasa's jsonschema check of each action response (in Rasa's own virtualenv), and a tracker
GET (proxy for tracker retrieval); what is left is tracker save, lock and Rasa's own handling.

Usage, from the repository root:
    .venv/bin/python bench/turns.py                      # own stack in a temp dir, embedded SQLite
    .venv/bin/python bench/turns.py --postgres postgresql://postgres@127.0.0.1:5432/test \\
        --redis redis://127.0.0.1:6379/0                 # own stack on PostgreSQL + Redis
        (bootstrap migrates that database and restores the demo shop in it)
    .venv/bin/python bench/turns.py --gateway http://127.0.0.1:8000 --rasa http://127.0.0.1:5005 \\
        --actions http://127.0.0.1:5055 --token TOKEN    # an already running stack
        # (its REST key: --rest-key, else DEMO_REST_KEY from var/dev.env)
Options: --concurrency 1,20 --conversations 30,60 --warmup 3 --one-turn --samples 10 --timeout 900
Results go to stdout, progress to stderr. Only loopback addresses are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.sender_ids import sender_id  # noqa: E402
from devtools.bootstrap import env_value  # noqa: E402
from devtools.demo_shop import DEMO_TENANT_ID  # noqa: E402
from tests.integration.stack import (  # noqa: E402
    MODEL,
    NO_RATE_LIMITS,
    TOKEN,
    Stack,
    rasa_headers,
)

log = logging.getLogger("bench.turns")

TRACKING = "1Z999AA10123456784"
THREE_TURNS = ("where is my order?", "#1001", "alex@example.com")
ONE_TURN = ("Where's order #1001? my email is alex@example.com",)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"
# Rasa 3.6 checks every action-server response with jsonschema.validate(), which first
# re-validates Rasa's own schema against the metaschema (bot/speedups.py replaces that with a
# validator built once; `import bot` installs it, as in `rasa run`); POST /model/predict
# checks its events the same way. Time exactly those two calls (the events come on stdin).
SCHEMA_CHECK = """
import json, statistics, sys, time, jsonschema
from rasa.core.actions.action import RemoteAction
import bot
from rasa.shared.utils.schemas.events import EVENTS_SCHEMA
action, events = RemoteAction("x", None), json.load(sys.stdin)
def median_ms(call):
    times = []
    for _ in range({n}):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
print(median_ms(lambda: action._validate_action_result({{"events": events[-3:]}})),
      median_ms(lambda: jsonschema.validate(events, EVENTS_SCHEMA)))
"""


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN when there is nothing to rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    direct: bool  # True: Rasa's own REST channel with the gateway's scoped sender id
    headers: dict[str, str] = field(default_factory=dict)  # the gateway's: the shop's REST key

    def body(self, user: str, text: str) -> dict[str, Any]:
        if not self.direct:
            return {"sender": user, "message": text}
        return {"sender": sender_id(DEMO_TENANT_ID, "rest", user), "message": text,
                "metadata": {"tenant_id": DEMO_TENANT_ID, "channel": "rest"}}


@dataclass
class Stats:
    turns: int = 0
    errors: int = 0
    seconds: float = 0.0
    ms: list[float] = field(default_factory=list)
    by_turn: dict[int, list[float]] = field(default_factory=dict)


async def converse(client: httpx.AsyncClient, target: Target, script: tuple[str, ...],
                   stats: Stats) -> str:
    """Play one conversation; return its user id. Failed turns and wrong answers are errors."""
    user = f"bench-{uuid.uuid4().hex[:12]}"
    answer = ""
    for index, text in enumerate(script):
        started = time.perf_counter()
        try:
            response = await client.post(target.url, json=target.body(user, text),
                                         headers=target.headers)
            response.raise_for_status()
            answer = "\n".join(r.get("text") or "" for r in response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("%s turn %d failed for %s: %r", target.name, index + 1, user, exc)
            stats.errors += 1
            return user
        elapsed = (time.perf_counter() - started) * 1000
        stats.turns += 1
        stats.ms.append(elapsed)
        stats.by_turn.setdefault(index, []).append(elapsed)
    if TRACKING not in answer:
        log.warning("%s: wrong last answer for %s: %.120s", target.name, user, answer)
        stats.errors += 1
    return user


async def run_level(client: httpx.AsyncClient, target: Target, script: tuple[str, ...],
                    concurrency: int, conversations: int) -> Stats:
    stats, next_index = Stats(), iter(range(conversations))

    async def worker() -> None:
        for _ in next_index:  # shared iterator: bounded by `conversations` in total
            await converse(client, target, script, stats)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stats.seconds = time.perf_counter() - started
    return stats


def action_calls(tracker: dict[str, Any], domain: dict[str, Any],
                 registered: set[str]) -> list[tuple[int, str, float, list[dict[str, Any]]]]:
    """The action-server calls Rasa made in this conversation: (turn, action, until, extra events).

    Read from the tracker plus Rasa 3.6's rules: custom actions are logged as events; a form
    run calls validate_<form> once, twice at an activation with no pre-filled slot; slots with
    a custom mapping naming an action run it after every message and at every form activation.
    """
    mapping_actions = sorted({m["action"] for s in domain.get("slots", {}).values()
                              for m in s.get("mappings", []) if m.get("type") == "custom"
                              and m.get("action") in registered})
    forms = {name: spec.get("required_slots", []) for name, spec in domain.get("forms", {}).items()}
    calls: list[tuple[int, str, float, list[dict[str, Any]]]] = []
    slots: dict[str, Any] = {}
    active, turn = None, 0
    turn_slots: dict[str, Any] = {}
    events = tracker["events"]
    for i, event in enumerate(events):
        kind, name, ts = event["event"], event.get("name"), event["timestamp"]
        before = events[i - 1]["timestamp"] if i else ts - 1e-3
        if kind == "user":
            turn, turn_slots = turn + 1, {}
            calls += [(turn, a, ts, []) for a in mapping_actions]
        elif kind == "slot":
            slots[name] = event.get("value")
            turn_slots[name] = event.get("value")
        elif kind == "active_loop":
            active = name
        elif kind == "action" and name in forms and f"validate_{name}" in registered:
            required = forms[name]
            activation = active != name
            if activation:
                calls += [(max(turn, 1), a, before, []) for a in mapping_actions]
                candidates = {k: slots[k] for k in required if slots.get(k) is not None}
            else:
                candidates = {k: v for k, v in turn_slots.items()
                              if k in required and v is not None}
            extra = ([{"event": "slot", "name": "requested_slot",
                       "value": slots.get("requested_slot"), "timestamp": before},
                      {"event": "action", "name": name, "timestamp": before}]
                     + [{"event": "slot", "name": k, "value": v, "timestamp": before}
                        for k, v in candidates.items()])
            calls += [(max(turn, 1), f"validate_{name}", before, extra)] * (
                2 if activation and not candidates else 1)
        elif kind == "action" and name in registered:
            calls.append((max(turn, 1), name, before, []))
    return calls


async def p50_ms(times: int, request: Callable[[], Awaitable[httpx.Response]]) -> float:
    """Median milliseconds of `times` sequential requests, each of which must answer 2xx."""
    elapsed = []
    for _ in range(times):
        started = time.perf_counter()
        (await request()).raise_for_status()
        elapsed.append((time.perf_counter() - started) * 1000)
    return pct(elapsed, 50)


async def schema_checks_ms(samples: int, events: list[dict[str, Any]]) -> tuple[float, float]:
    """Rasa's jsonschema checks (action response; /model/predict's events), in Rasa's virtualenv."""
    try:
        proc = await asyncio.create_subprocess_exec(
            str(BOT_PY), "-c", SCHEMA_CHECK.format(n=samples), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(json.dumps(events).encode()), 180)
        response, predict = out.decode().split()[-2:]
        return float(response), float(predict)
    except (TimeoutError, OSError, ValueError) as exc:
        log.warning("could not time Rasa's schema checks: %r", exc)
        return math.nan, math.nan


async def breakdown(client: httpx.AsyncClient, rasa: str, actions: str, token: str,
                    samples: int) -> None:
    """Sequential: turn p50s direct to Rasa, then NLU, policy, replayed action calls, checks."""
    target = Target("rasa", f"{rasa}/webhooks/rest/webhook", direct=True)
    log.info("breakdown: %d sequential conversations direct to Rasa", samples)
    stats, user = Stats(), ""
    for _ in range(samples):
        user = await converse(client, target, THREE_TURNS, stats)
    sender = sender_id(DEMO_TENANT_ID, "rest", user)
    auth = rasa_headers(token)
    track_url = f"{rasa}/conversations/{sender}/tracker"
    tracker = (await client.get(track_url, params={"include_events": "ALL"},
                                headers=auth)).json()
    domain = (await client.get(f"{rasa}/domain",
                               headers={**auth, "Accept": "application/json"})).json()
    version = (await client.get(f"{rasa}/version")).json().get("version", "3.6")
    registered = {a["name"] for a in (await client.get(f"{actions}/actions")).json()}

    many = samples * 3  # cheap requests: more samples against the noise
    log.info("breakdown: NLU parse, tracker GET, POST /model/predict x%d", many)
    rtt = await p50_ms(many, lambda: client.get(f"{rasa}/version"))  # one HTTP round trip
    nlu = [-rtt + await p50_ms(many, partial(client.post, f"{rasa}/model/parse", headers=auth,
                                             json={"text": text}))
           for text in THREE_TURNS]
    tracker_p50 = await p50_ms(many, lambda: client.get(track_url, headers=auth))
    predict_p50 = await p50_ms(many, lambda: client.post(  # no tracker store involved
        f"{rasa}/model/predict", headers=auth, json=tracker["events"]))
    predictions, turn = [0] * len(THREE_TURNS), 0
    for event in tracker["events"]:  # every bot action after a user message was predicted
        turn += event["event"] == "user"
        if event["event"] == "action" and 0 < turn <= len(predictions):
            predictions[turn - 1] += 1

    calls = action_calls(tracker, domain, registered)
    log.info("breakdown: replaying %d action calls x%d", len(calls), samples)
    bodies = []
    for _turn, name, until, extra in calls:
        state = (await client.get(track_url, headers=auth, params={
            "include_events": "ALL", "until": f"{until:.6f}"})).json()
        state["events"] += extra
        state["slots"].update({e["name"]: e["value"] for e in extra if e["event"] == "slot"})
        bodies.append({"next_action": name, "sender_id": sender, "tracker": state,
                       "domain": domain, "version": version})
    call_ms = [await p50_ms(samples, partial(client.post, f"{actions}/webhook", json=body))
               for body in bodies]

    log.info("breakdown: Rasa's action-response schema check, in %s", BOT_PY.parent.parent.name)
    check, events_check = await schema_checks_ms(many, tracker["events"])
    policy = predict_p50 - events_check - rtt

    print(f"\nWhere a turn's time goes (direct to Rasa, sequential, p50 of {samples}; ms)")
    print(f"{'turn':<4} {'text':<18} {'turn':>5} {'NLU':>4} {'policy':>8} {'actions':>7} "
          f"{'check':>5}  {'action calls (action server ms)':<40} {'rest':>4}")
    for index, text in enumerate(THREE_TURNS):
        mine = [(name, call_ms[i]) for i, (turn, name, _, _) in enumerate(calls)
                if turn == index + 1]
        total, spent = pct(stats.by_turn.get(index, []), 50), sum(ms for _, ms in mine)
        names = " + ".join(("validate" if n.startswith("validate_") else n.removeprefix("action_"))
                           + f" {ms:.0f}" for n, ms in mine) or "-"
        checks = len(mine) * check
        rest = total - nlu[index] - predictions[index] * policy - spent - checks
        print(f"{index + 1:<4} {text:<18} {total:5.0f} {nlu[index]:4.0f} {predictions[index]:>2}"
              f" x{policy:4.0f} {spent:7.0f} {checks:5.0f}  {names:<40} {rest:4.0f}")
    print(f"NLU: POST /model/parse - one HTTP round trip (GET /version {rtt:.1f}).\n"
          f"policy: predictions in the turn x (POST /model/predict on the conversation's events"
          f" {predict_p50:.0f}\n  - its events schema check {events_check:.0f} - round trip).\n"
          "actions: the turn's calls replayed to the action server (Rasa makes them over HTTP"
          " too).\n"
          f"check: calls x {check:.1f} ms, Rasa's jsonschema check of each action response.\n"
          f"rest = turn - the others: tracker load (GET of {len(tracker['events'])} events:"
          f" {tracker_p50:.0f} ms) and save, lock, Rasa's own handling.")


def start_stack(args: argparse.Namespace, deadline: float) -> Stack:
    """Our own stack in a temp dir; waits and retries while the model is missing or being
    rebuilt."""
    for attempt in range(1, 4):
        # Turns as fast as the gateway takes them, for minutes: the demo shop's default limit
        # (600 a minute) would answer 429 instead (connectors/limits.py).
        stack = Stack(Path(tempfile.mkdtemp(prefix="bench-turns-")),
                      database_url=args.postgres, redis_url=args.redis,
                      demo_rates=NO_RATE_LIMITS)
        try:
            if not MODEL.exists():
                raise RuntimeError(f"{MODEL} is missing (retraining?)")
            log.info("starting stack (%s) in %s", "postgres+redis" if args.postgres else "embedded",
                     stack.var_dir)
            return stack.start(timeout=min(180.0, max(10.0, deadline - time.monotonic())))
        except Exception as exc:  # noqa: BLE001 - any failure: report, stop, maybe retry
            stack.stop()
            log.warning("stack start %d failed: %s", attempt, str(exc)[-2000:])
            if attempt == 3 or time.monotonic() + 60 > deadline:
                raise
            time.sleep(60)
    raise AssertionError("unreachable")


async def bench(args: argparse.Namespace, gateway: str, rasa: str, actions: str,
                token: str, rest_key: str) -> None:
    levels = [int(c) for c in args.concurrency.split(",")]
    counts = [int(c) for c in args.conversations.split(",")]
    counts += [counts[-1]] * (len(levels) - len(counts))
    scripts = [("3-turn", THREE_TURNS)] + ([("1-turn", ONE_TURN)] if args.one_turn else [])
    targets = [Target("gateway", f"{gateway}/channels/demo/rest/webhook", direct=False,
                      headers={"Authorization": f"Bearer {rest_key}"}),
               Target("rasa", f"{rasa}/webhooks/rest/webhook", direct=True)]
    limits = httpx.Limits(max_connections=max(levels) + 10,
                          max_keepalive_connections=max(levels) + 10)
    async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as client:
        for target in targets:
            log.info("warm-up: %d conversations via %s", args.warmup, target.name)
            for _, script in scripts:
                await run_level(client, target, script, 1, args.warmup)
        rows: list[tuple[str, str, int, int, Stats]] = []
        for label, script in scripts:
            for level, count in zip(levels, counts, strict=False):  # extra counts unused
                for target in targets:
                    log.info("%s %s: concurrency %d, %d conversations", target.name, label,
                             level, count)
                    rows.append((target.name, label, level, count,
                                 await run_level(client, target, script, level, count)))
        print(f"\n{'target':<8} {'script':<7} {'conc':>4} {'convs':>5} {'turns':>5} {'errors':>6} "
              f"{'turns/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
        for name, label, level, count, s in rows:
            print(f"{name:<8} {label:<7} {level:>4} {count:>5} {s.turns:>5} {s.errors:>6} "
                  f"{s.turns / s.seconds:>7.1f} {pct(s.ms, 50):>7.0f} {pct(s.ms, 95):>7.0f} "
                  f"{pct(s.ms, 99):>7.0f}")
        p50 = {(n, lb, lv): pct(s.ms, 50) for n, lb, lv, _, s in rows}
        for label, _ in scripts:
            for level in levels:
                print(f"gateway added p50, {label}, concurrency {level}: "
                      f"{p50[('gateway', label, level)] - p50[('rasa', label, level)]:+.0f} ms")
        await breakdown(client, rasa, actions, token, args.samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,20",
                        help="comma-separated levels (1 = sequential)")
    parser.add_argument("--conversations", default="30,60", help="per level (last one repeats)")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted conversations per target")
    parser.add_argument("--one-turn", action="store_true", help="also the one-message variant")
    parser.add_argument("--samples", type=int, default=10, help="repetitions in the breakdown")
    parser.add_argument("--timeout", type=float, default=900, help="global limit in seconds")
    parser.add_argument("--postgres", help="own stack on this PostgreSQL URL (with --redis)")
    parser.add_argument("--redis", help="own stack with this Redis URL (with --postgres)")
    parser.add_argument("--gateway", help="running stack: gateway base URL")
    parser.add_argument("--rasa", help="running stack: Rasa base URL")
    parser.add_argument("--actions", help="running stack: action server base URL")
    parser.add_argument("--token", help="running stack: its RASA_TOKEN (bot/serve.py)")
    parser.add_argument("--rest-key", help="running stack: the demo shop's REST API key "
                        "(default: DEMO_REST_KEY in var/dev.env, written by make run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("gateway", "rasa", "actions", "postgres", "redis"):
        if getattr(args, name) and urlparse(getattr(args, name)).hostname not in LOOPBACK:
            parser.error(f"--{name} must be a loopback address")
    running = [args.gateway, args.rasa, args.actions, args.token]
    if any(running) and not all(running):
        parser.error("--gateway, --rasa, --actions and --token go together")
    if bool(args.postgres) != bool(args.redis):
        parser.error("--postgres and --redis go together")
    deadline = time.monotonic() + args.timeout
    stack, finished = None if all(running) else start_stack(args, deadline), False
    try:
        urls = running if stack is None else [stack.gateway, stack.rasa,
                                              f"http://127.0.0.1:{stack.actions_port}", TOKEN]
        rest_key = (stack.rest_key if stack is not None else
                    args.rest_key or env_value(ROOT / "var" / "dev.env", "DEMO_REST_KEY"))
        if not rest_key:
            parser.error("--rest-key: the demo shop's REST API key (var/dev.env has none)")
        gateway, rasa, actions, token = (str(url) for url in urls)
        run_before(deadline, args.timeout, bench(args, gateway, rasa, actions, token, rest_key))
        finished = True
    finally:
        if stack is not None:
            stop_stack(stack, finished)


def run_before(deadline: float, timeout: float, work: Coroutine[Any, Any, Any]) -> None:
    """Run a bench's coroutine until the global deadline; exit 2 when it is reached."""
    try:
        asyncio.run(asyncio.wait_for(work, max(1.0, deadline - time.monotonic())))
    except TimeoutError:
        log.error("gave up after the global timeout of %.0f s", timeout)
        raise SystemExit(2) from None


def stop_stack(stack: Stack, finished: bool) -> None:
    """Stop a bench's own stack: its folder is removed after a finished run, kept (with the
    processes' logs) otherwise."""
    log.info("stopping stack")
    stack.stop()
    if finished:
        shutil.rmtree(stack.var_dir, ignore_errors=True)
    else:
        log.info("stack logs kept in %s", stack.var_dir)

if __name__ == "__main__":
    main()
