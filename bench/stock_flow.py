"""Our demo shop's order-status conversation against the stock Rasa flow bot, in one run on one
machine (issue 15, part 2: throughput at 20 concurrent >= 3x the stock bot, p95 <= 400 ms).

The stock bot is ../shared/bench/stock-rasa-flow: Rasa's default pipeline and policies (DIET,
TED), a rasa-sdk action server, SQLite tracker store, built the way Rasa's documentation leads a
user to build it. Both answer "where is my order?" -> "#1001" -> "alex@example.com" with the
tracking number; a conversation that does not end with it counts as wrong.

1. Copies the stock project to <out>/stock-rasa-flow and trains it once (Rasa's cache off;
   kept for later runs), starts its action server (our .venv: rasa-sdk) and `rasa run` on free
   loopback ports.
2. Starts our stack as `make run` does (embedded SQLite, one Rasa process), or with
   `--postgres/--redis` on PostgreSQL and Redis with `--workers` Rasa Sanic workers, with the
   demo shop's rate limits off (one client address plays every visitor). With `--shop-model
   FILE` the demo shop is switched to that trained model (bot/runtime.py), so the turns go
   through a shop's own model instead of the base.
3. Plays `--conversations` conversations, `--concurrency` at a time, against each in turn for
   `--rounds` rounds (stock, ours, stock, ours, ...: a busy moment hits both alike) after a
   warm-up; ours through the gateway's REST channel with the demo shop's key, the stock bot
   through Rasa's REST channel.
4. Prints per round and overall: turns/s, p50/p95/p99 per turn, correct conversations, and
   ours / stock; then where the CPU went: milliseconds of CPU per turn for each process (its
   children counted in: Sanic's workers) over all rounds, ours and the stock bot's.

    .venv/bin/python bench/stock_flow.py [--rounds 3] [--conversations 300] [--concurrency 20]
        [--postgres URL --redis URL --workers 2] [--shop-model FILE] [--out var/bench-stock]

Results go to stdout, progress to stderr. Only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.demo_shop import DEMO_TENANT_ID  # noqa: E402
from tests.integration.stack import NO_RATE_LIMITS, Stack, rasa_headers  # noqa: E402
from tests.servers import free_port  # noqa: E402

log = logging.getLogger("bench.stock_flow")
STOCK = ROOT.parent / "shared" / "bench" / "stock-rasa-flow"
TURNS = ("where is my order?", "#1001", "alex@example.com")
TRACKING = "1Z999AA10123456784"
APP_PY = ROOT / ".venv" / "bin" / "python"
RASA = ROOT / ".venv-bot" / "bin" / "rasa"


def cpu_table() -> dict[int, tuple[int, float]]:
    """Every process now: pid -> (parent pid, user + system CPU seconds so far)."""
    ticks = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return table


def tree_seconds(table: dict[int, tuple[int, float]], pid: int) -> float:
    """CPU seconds of `pid` and all its descendants in `table` (0 for a process gone)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += table.get(current, (0, 0.0))[1]
        todo.extend(child for child, (parent, _) in table.items() if parent == current)
    return total


class CpuMeter:
    """CPU seconds per named process tree, and this process's own (`client`: the stacks are
    its children), summed over the periods measured."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.spent = dict.fromkeys([*pids, "client"], 0.0)
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        table = cpu_table()
        return {**{name: tree_seconds(table, pid) for name, pid in self.pids.items()},
                "client": time.process_time()}

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        for name, seconds in self._now().items():
            self.spent[name] += seconds - self._start[name]

    def line(self, turns: int) -> str:
        parts = [f"{name} {1000 * seconds / turns:.1f}" for name, seconds in self.spent.items()]
        return (f"{', '.join(parts)}; all {1000 * sum(self.spent.values()) / turns:.1f} "
                "ms CPU per turn")


@dataclass
class Result:
    name: str
    turns: int
    seconds: float
    latencies: list[float]
    correct: int
    conversations: int

    @property
    def rate(self) -> float:
        return self.turns / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    def line(self) -> str:
        return (f"{self.name:<8} {self.rate:7.1f} {self.quantile(.5):7.0f} "
                f"{self.quantile(.95):7.0f} {self.quantile(.99):7.0f}   "
                f"{self.correct}/{self.conversations}")


async def play(url: str, headers: dict[str, str], conversations: int, concurrency: int,
               name: str) -> Result:
    """aiohttp, as the stock project's load_flow.py: the client's own CPU (on the same two
    cores) is a small part of the turns' cost."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as client:

        async def conversation() -> bool:
            async with gate:
                sender, last = f"bench-{uuid.uuid4().hex[:12]}", ""
                for text in TURNS:
                    started = time.perf_counter()
                    async with client.post(url, json={"sender": sender,
                                                      "message": text}) as answer:
                        body = await answer.json(content_type=None)
                    latencies.append(time.perf_counter() - started)
                    last = " ".join(str(m.get("text", "")) for m in
                                    (body if isinstance(body, list) else []))
                return TRACKING in last

        started = time.perf_counter()
        done = await asyncio.gather(*(conversation() for _ in range(conversations)))
        seconds = time.perf_counter() - started
    return Result(name, len(latencies), seconds, latencies, sum(done), conversations)


class StockBot:
    """The stock project trained under `out`, its action server and `rasa run`."""

    def __init__(self, out: Path) -> None:
        self.dir = out / "stock-rasa-flow"
        self.action_port, self.rasa_port = free_port(), free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}/webhooks/rest/webhook"

    def prepare(self) -> None:
        model = self.dir / "models" / "flow.tar.gz"
        if model.is_file():
            print(f"stock bot: reusing {model}", file=sys.stderr)
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.copytree(STOCK, self.dir)
        print("stock bot: training (DIET + TED, ~35 s; Rasa's cache off) ...", file=sys.stderr)
        started = time.perf_counter()
        subprocess.run([str(RASA), "train", "--fixed-model-name", "flow"], cwd=self.dir,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "RASA_MAX_CACHE_SIZE": "0",
                            "RASA_TELEMETRY_ENABLED": "false"})
        print(f"stock bot: trained in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    def start(self) -> None:
        endpoints = self.dir / "endpoints.yml"
        endpoints.write_text((STOCK / "endpoints.yml").read_text().replace(
            "localhost:5056", f"127.0.0.1:{self.action_port}"))
        (self.dir / "tracker.db").unlink(missing_ok=True)
        env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false"}
        for argv in ([str(APP_PY), "-m", "rasa_sdk", "--actions", "actions",
                      "-p", str(self.action_port)],
                     [str(RASA), "run", "--enable-api", "-i", "127.0.0.1",
                      "-p", str(self.rasa_port), "-m", "models/flow.tar.gz"]):
            log_file = open(self.dir / f"{Path(argv[0]).name}-{len(self.procs)}.log", "wb")
            self.procs.append(subprocess.Popen(argv, cwd=self.dir, env=env, stdout=log_file,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.rasa_port}/status",
                             timeout=3).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the stock bot did not start (see its logs under "
                           f"{self.dir})")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)


def switch_demo_to(stack: Stack, model: Path) -> None:
    from bot.shop_models import Registry

    version = uuid.uuid4().hex
    registry = Registry(stack.var_dir / "shop-models")
    target = registry.model_file(DEMO_TENANT_ID, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, target)
    registry.set_active(DEMO_TENANT_ID, version)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        models = httpx.get(f"{stack.rasa}/webhooks/switchboard/models",
                           headers=rasa_headers(), timeout=10).json()
        if models["shops"].get(DEMO_TENANT_ID, {}).get("serving") == version:
            print(f"demo shop on its own model {version[:8]} ({model.name})", file=sys.stderr)
            return
        time.sleep(0.5)
    raise RuntimeError("the runtime did not switch the demo shop to the shop model")


async def measure(args: argparse.Namespace, stack: Stack, stock: StockBot,
                  meters: dict[str, CpuMeter]) -> list[Result]:
    ours_url = f"{stack.gateway}/channels/demo/rest/webhook"
    ours_headers = {"Authorization": f"Bearer {stack.rest_key}"}
    print("warming up both ...", file=sys.stderr)
    await play(ours_url, ours_headers, 2 * args.concurrency, args.concurrency, "warm")
    await play(stock.url, {}, 2 * args.concurrency, args.concurrency, "warm")
    results = []
    for round_ in range(1, args.rounds + 1):
        for name, url, headers in (("stock", stock.url, {}), ("ours", ours_url, ours_headers)):
            print(f"round {round_}: {name} ...", file=sys.stderr)
            with meters[name]:
                result = await play(url, headers, args.conversations, args.concurrency, name)
            print(f"  {result.line()}", file=sys.stderr)
            results.append(result)
    return results


def report(args: argparse.Namespace, results: list[Result], meters: dict[str, CpuMeter]) -> None:
    print(f"\n{args.conversations} conversations x 3 turns, {args.concurrency} at a time, "
          f"{args.rounds} rounds; ours: {args.shape}")
    print(f"{'target':<8} {'turns/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}   correct")
    for result in results:
        print(result.line())
    ratios = [ours.rate / stock.rate for stock, ours in zip(results[::2], results[1::2],
                                                            strict=True)]
    ours = [r for r in results if r.name == "ours"]
    stock = [r for r in results if r.name == "stock"]
    print(f"\nours / stock turns/s per round: {', '.join(f'{r:.2f}x' for r in ratios)}"
          f"  (median {statistics.median(ratios):.2f}x; target >= 3x)")
    print(f"ours p95 per round: {', '.join(f'{r.quantile(.95):.0f}' for r in ours)} ms"
          f"  (target <= 400 ms); stock p95: "
          f"{', '.join(f'{r.quantile(.95):.0f}' for r in stock)} ms")
    for name, meter in meters.items():
        print(f"{name} CPU: {meter.line(sum(r.turns for r in results if r.name == name))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--postgres")
    parser.add_argument("--redis")
    parser.add_argument("--workers", type=int, default=1, help="Rasa Sanic workers (needs --redis)")
    parser.add_argument("--shop-model", type=Path, help="a trained shop model for the demo shop")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-stock")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.workers > 1 and not args.redis:
        parser.error("--workers > 1 needs --redis (Rasa's workers share a lock store)")
    args.shape = (f"PostgreSQL + Redis, {args.workers} Rasa worker(s)" if args.postgres
                  else "embedded (SQLite, one Rasa process)")
    if args.shop_model:
        args.shape += f", demo shop on a shop model ({args.shop_model.name})"
    args.out.mkdir(parents=True, exist_ok=True)
    stock = StockBot(args.out)
    stock.prepare()
    work = Path(tempfile.mkdtemp(prefix="bench-stock-"))
    stack = Stack(work, database_url=args.postgres, redis_url=args.redis,
                  demo_rates=NO_RATE_LIMITS)
    stack.extra_env.update(SANIC_WORKERS=str(args.workers), LOG_LEVEL="WARNING")
    try:
        print("starting our stack and the stock bot ...", file=sys.stderr)
        stack.start()
        stock.start()
        if args.shop_model:
            switch_demo_to(stack, args.shop_model)
        meters = {"ours": CpuMeter({name: proc.pid for name, proc in stack.procs.items()}),
                  "stock": CpuMeter({"rasa": stock.procs[1].pid, "actions": stock.procs[0].pid})}
        results = asyncio.run(measure(args, stack, stock, meters))
    finally:
        stock.stop()
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(args, results, meters)


if __name__ == "__main__":
    main()
