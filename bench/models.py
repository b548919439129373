"""Many shop models in one bot process (issue 15, part 2): training time, load time, resident
memory per extra model, parse latency per model, and N models resident at once.

1. Makes `--shops` shop models: each is the base (data/, bot/domain/, config.yml) plus a small
   overlay of its own, generated from templates with each shop's words (bikes, tea, shoes...):
   3-5 new intents of 24-40 examples, a response and a rule for each. Each is trained with
   Rasa's Python API (`rasa.model_training.train`) in a child process of its own (so training
   leaves nothing in the measuring process) with Rasa's training cache off (cold times), into
   `--out` (default var/bench-models). Existing models are reused with the training time
   measured when they were made; `--retrain` trains them again.
2. Loads the base model (`--base`, default models/switchboard.tar.gz) and the shop models into
   this process as Rasa `Agent`s, each followed by one parse (the first parse loads the
   process's one shared MiniLM encoder, bot/featurizer.py), printing the load seconds and the
   resident memory (VmRSS) before, after the load, after the parse and after `malloc_trim(0)`
   (glibc handing freed heap back: loading leaves a lot of freed memory behind, see below).
   Every component's load is timed too (`GraphNode._load_component`), with the RSS it added.
3. Parse latency (Agent.parse_message: NLU only, no policies or actions) per model, warm, over
   one fixed set of messages (base flows + each shop's own intents), interleaved across models
   so a busy machine slows them alike; p50/p95 per model.
4. Loads more models until `--resident` shop models are resident (besides the base). Only
   `--shops` distinct models are trained, so the rest are COPIES of them loaded again
   (separate Agents, separate unpacked model directories, nothing shared by us) — the output
   says how many are copies. A copy holds its own objects just as a distinct model does
   (nothing is deduplicated), so copies stand in for distinct models of the same size; bigger
   overlays mean bigger vocabularies and classifier weights (component sizes are printed).
5. A summary against the issue's targets.

Run from the repository root in Rasa's interpreter:
    PYTHONPATH=. .venv-bot/bin/python bench/models.py [--shops 3] [--resident 20]
        [--out var/bench-models] [--retrain] [--base models/switchboard.tar.gz] [--rounds 20]
Results go to stdout, progress to stderr.

Measured here on 2026-11-29 (2 cores; 3 shops with 3/4/5 overlay intents, 20 resident):
    training base + overlay (cold, Rasa's cache off)  34 / 36 / 34 s   (target <= 180 s);
      models 1.0-1.2 MB packed
    RSS: start 22 MB, `import rasa` 531, base loaded 547, after its first parse (MiniLM
      encoder) 765, trimmed 714
    each shop model: load 0.19-0.30 s (mean 0.23; target <= 5 s); RSS +6..+7 MB right after
      the load, +4..+5 MB after malloc_trim (target <= 150 MB)
    parse p50 / p95: base 4.7 / 7.2 ms, each shop model 4.7-4.8 / 7.1-7.2 ms (+0.1 ms p50 at
      most; target +-5 ms); each shop model routes its own probe to its own intent (0.96-0.99)
    20 shop models resident (3 distinct + 17 copies) + base = 21 agents: RSS 804 MB.
Where it goes: a model holds a few MB (the linear classifier 1.25 MB stored, the two
CountVectorsFeaturizer vocabularies 0.3 MB, the CRF 0.08 MB, RulePolicy and domain less); the
MiniLM encoder (~220 MB with ONNX Runtime, the base row's first parse) and Rasa/TensorFlow
(~500 MB) are per process, shared. Before bot/entities.py (2026-11-28), Rasa's own
CRFEntityExtractor stored its whole training set with every token's 384 dense features as
decimal strings (136 of a ~138 MB unpacked model) and trained its CRFs again from it at every
load: a shop model loaded in 2.9-3.2 s and held +44..+103 MB right after its load.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench.models")

TARGET_EXTRA_MB = 150
TARGET_LOAD_S = 5.0
TARGET_P50_MS = 5.0
TARGET_TRAIN_S = 180
BASE_MESSAGES = ("where is my order?", "I want to return the shoes I bought last week",
                 "can I talk to a real person please", "hi there", "thanks, bye",
                 "what are your opening hours on sunday?")

# A shop's overlay: each intent is (suffix, templates, answer); {item} and {thing} take the
# shop's words. Which intents a shop gets and how many examples varies by shop.
INTENTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("sizing", ("is the {item} the right size for me", "which {item} size should I pick",
                "how do I know my size for a {item}", "does the {item} run small",
                "what size {item} do I need if I am {height}", "{item} size guide please",
                "I'm {height}, which size of {item}?", "is a medium {item} too big for me"),
     "Our size guide for {plural} is on every product page; tell me your height and we'll help."),
    ("care", ("how do I clean my {item}", "how should I look after the {item}",
              "can the {item} go in the {appliance}", "best way to store a {item}",
              "how to keep my {item} like new", "does the {item} need any maintenance",
              "can I wash the {item} with {thing}", "care instructions for the {item}"),
     "Care tips for {plural} come with the product; the short version: no {appliance}."),
    ("stock", ("do you have the {item} in {colour}", "is the {colour} {item} back in stock",
               "when will the {item} be available again", "can I preorder the {colour} {item}",
               "is the {item} sold out", "any {colour} {plural} left",
               "notify me when the {item} is back", "how many {plural} do you have in stock"),
     "Stock for {plural} updates daily on the product page; we can email you when it's back."),
    ("gift", ("can you gift wrap the {item}", "I want to send a {item} as a present",
              "do you do gift cards for {plural}", "can I add a note to a {item} gift",
              "is there gift packaging for the {item}", "send the {item} to my friend directly",
              "gift wrapping for {plural}?", "can the {item} be a surprise, no price on it"),
     "Yes, every {item} can be gift wrapped with a note, and we leave the price off."),
    ("bundle", ("is there a discount if I buy two {plural}", "do you sell a {item} bundle",
                "can I get the {item} with {thing} as a set", "any deals on {plural} this week",
                "price for a {item} and {thing} together", "bulk discount on {plural}?",
                "buy more {plural} save more?", "is there a starter kit with a {item}"),
     "Bundles with {thing} save 10 % on a {item}; they are listed under Sets."),
)
SHOPS: tuple[dict[str, Any], ...] = (
    {"name": "bikes", "items": ("bike", "road bike", "frame", "helmet"), "plural": "bikes",
     "colour": ("matte black", "red", "teal"), "height": ("5 foot 8", "180 cm", "6'2"),
     "appliance": "pressure washer", "thing": ("a lock", "lights", "chain oil")},
    {"name": "tea", "items": ("teapot", "matcha set", "tea tin", "oolong"), "plural": "teapots",
     "colour": ("jade", "white", "cast iron black"), "height": ("a small kitchen", "two people",
     "a big family"), "appliance": "dishwasher", "thing": ("cups", "a kettle", "loose leaf")},
    {"name": "shoes", "items": ("sneaker", "boot", "running shoe", "sandal"), "plural": "shoes",
     "colour": ("navy", "white", "tan"), "height": ("size 42", "wide feet", "a 10.5 US"),
     "appliance": "washing machine", "thing": ("insoles", "laces", "a shoe tree")},
    {"name": "plants", "items": ("monstera", "cactus", "planter", "bonsai"), "plural": "plants",
     "colour": ("variegated", "terracotta", "green"), "height": ("a north window", "an office",
     "a dark flat"), "appliance": "sink", "thing": ("soil", "a pot", "fertiliser")},
    {"name": "games", "items": ("board game", "puzzle", "card game", "dice set"),
     "plural": "games", "colour": ("deluxe", "travel", "collector's"), "height": ("4 players",
     "kids of 8", "two players"), "appliance": "washer", "thing": ("sleeves", "an expansion",
     "a playmat")},
)


def overlay(shop: dict[str, Any], index: int) -> tuple[str, str, str, str]:
    """(domain YAML, NLU YAML, rules YAML, a probe message) for one shop."""
    count = 3 + index % 3  # 3, 4, 5 intents
    start = index % len(INTENTS)
    chosen = [INTENTS[(start + k) % len(INTENTS)] for k in range(count)]
    name = shop["name"]
    domain = ['version: "3.1"', "", "intents:"]
    responses = ["", "responses:"]
    nlu = ['version: "3.1"', "", "nlu:"]
    rules = ['version: "3.1"', "", "rules:"]
    probe = ""
    for k, (suffix, templates, answer) in enumerate(chosen):
        intent = f"{name}_{suffix}"
        domain.append(f"  - {intent}")
        words = {"plural": shop["plural"], "appliance": shop["appliance"]}
        said = answer.format(item=shop["items"][0], thing=shop["thing"][0], **words)
        responses += [f"  utter_{intent}:", f'    - text: "{said}"']
        examples: list[str] = []
        per_template = 3 + (index + k) % 3  # 24-40 examples an intent
        for t, template in enumerate(templates):
            for v in range(per_template):
                text = template.format(item=shop["items"][(t + v) % len(shop["items"])],
                                       colour=shop["colour"][v % 3], height=shop["height"][v % 3],
                                       thing=shop["thing"][(t + v) % 3], **words)
                if text not in examples:
                    examples.append(text)
        nlu += [f"  - intent: {intent}", "    examples: |"] + [f"      - {e}" for e in examples]
        rules += [f"  - rule: {name} {suffix}", "    steps:", f"      - intent: {intent}",
                  f"      - action: utter_{intent}"]
        if k == 0:
            probe = templates[0].format(item=shop["items"][-1], colour=shop["colour"][0],
                                        height=shop["height"][0], thing=shop["thing"][0], **words)
    return ("\n".join(domain + responses) + "\n", "\n".join(nlu) + "\n", "\n".join(rules) + "\n",
            probe)


# --- training ------------------------------------------------------------------------------


def train_one(name: str, out: Path) -> None:
    """In the child process: train the shop's model from the project written under out/src."""
    from rasa.model_training import train

    from bot.project import base_training_paths  # the base's training data, never data/tests

    src = out / "src" / name
    started = time.perf_counter()
    result = train(domain=str(src / "domain"), config=str(ROOT / "config.yml"),
                   training_files=[*base_training_paths(ROOT), str(src / "data")], output=str(out),
                   fixed_model_name=name, force_training=True)
    seconds = time.perf_counter() - started
    if result.code != 0 or not result.model:
        raise SystemExit(f"training {name} failed (code {result.code})")
    (out / f"{name}.json").write_text(json.dumps({"seconds": round(seconds, 1),
                                                  "when": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                        time.gmtime())}))


def make_models(count: int, out: Path, retrain: bool) -> list[tuple[str, Path, float, str]]:
    """(name, model, training seconds, probe message) per shop, trained if needed."""
    models = []
    for index, shop in enumerate(SHOPS[:count]):
        name = shop["name"]
        domain, nlu, rules, probe = overlay(shop, index)
        model, meta = out / f"{name}.tar.gz", out / f"{name}.json"
        if retrain or not (model.is_file() and meta.is_file()):
            src = out / "src" / name
            shutil.rmtree(src, ignore_errors=True)
            (src / "domain").mkdir(parents=True)
            (src / "data").mkdir()
            for f in (ROOT / "bot" / "domain").glob("*.yml"):
                shutil.copy(f, src / "domain" / f.name)
            (src / "domain" / f"shop_{name}.yml").write_text(domain)
            (src / "data" / f"nlu_{name}.yml").write_text(nlu)
            (src / "data" / f"rules_{name}.yml").write_text(rules)
            intents = domain.count("\n  - ")
            print(f"training {name}: base + {intents} intents, {nlu.count('      - ')} examples"
                  " (Rasa's training cache off) ...", file=sys.stderr, flush=True)
            env = {**os.environ, "RASA_MAX_CACHE_SIZE": "0", "PYTHONPATH": str(ROOT),
                   "TF_CPP_MIN_LOG_LEVEL": "3"}
            with open(out / f"{name}.log", "w", encoding="utf-8") as logfile:
                done = subprocess.run([sys.executable, __file__, "--train-one", name, "--out",
                                       str(out)], env=env, cwd=ROOT, stdout=logfile,
                                      stderr=subprocess.STDOUT)
            if done.returncode:
                raise SystemExit(f"training {name} failed: see {out / f'{name}.log'}")
            reused = ""
        else:
            reused = " (reused; measured when trained)"
        info = json.loads(meta.read_text())
        print(f"  {name}: trained in {info['seconds']:.0f} s{reused}", file=sys.stderr, flush=True)
        models.append((name, model, float(info["seconds"]), probe))
    return models


# --- measuring -----------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


_libc = ctypes.CDLL("libc.so.6")


def trimmed_mb() -> float:
    gc.collect()
    _libc.malloc_trim(0)
    return rss_mb()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Loaded:
    name: str
    path: Path
    agent: Any
    load_s: float
    before: float
    after_load: float
    after_parse: float
    after_trim: float
    copy: bool = False
    ms: list[float] = field(default_factory=list)


class ComponentTimes:
    """Wraps Rasa's GraphNode._load_component: seconds and RSS added per component class."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.mb: dict[str, list[float]] = defaultdict(list)
        self.on = False

    def install(self) -> None:
        from rasa.engine.graph import GraphNode

        original = GraphNode._load_component
        times = self

        def timed(node: Any, **kwargs: Any) -> None:
            before, started = rss_mb(), time.perf_counter()
            original(node, **kwargs)
            if times.on:
                name = node._component_class.__name__
                times.seconds[name].append(time.perf_counter() - started)
                times.mb[name].append(rss_mb() - before)

        GraphNode._load_component = timed


def load(name: str, path: Path, loop: asyncio.AbstractEventLoop, trim: bool,
         copy: bool = False) -> Loaded:
    from rasa.core.agent import Agent

    before = trimmed_mb() if trim else rss_mb()
    started = time.perf_counter()
    agent = Agent.load(str(path))
    load_s = time.perf_counter() - started
    after_load = rss_mb()
    loop.run_until_complete(agent.parse_message("hello, where is my order?"))
    after_parse = rss_mb()
    return Loaded(name, path, agent, load_s, before, after_load, after_parse,
                  trimmed_mb() if trim else after_parse, copy)


def component_sizes(path: Path) -> dict[str, int]:
    """Bytes per component directory inside a model archive."""
    sizes: dict[str, int] = defaultdict(int)
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            parts = member.name.lstrip("/").split("/")
            if member.isfile() and len(parts) >= 3 and parts[0] == "components":
                sizes[parts[1]] += member.size
    return dict(sizes)


def row(loaded: Loaded) -> str:
    m = loaded
    return (f"{m.name:<14} {m.load_s:6.2f} {m.before:8.0f} {m.after_load:8.0f}"
            f" {m.after_parse:8.0f} {m.after_trim:8.0f}"
            f" {m.after_parse - m.before:+8.0f} {m.after_trim - m.before:+8.0f}")


HEADER = (f"{'model':<14} {'load s':>6} {'RSS0 MB':>8} {'loaded':>8} {'parsed':>8} {'trimmed':>8}"
          f" {'+held':>8} {'+trimmed':>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shops", type=int, default=3)
    parser.add_argument("--resident", type=int, default=20, help="shop models resident at once")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-models")
    parser.add_argument("--base", type=Path, default=ROOT / "models" / "switchboard.tar.gz")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds of the message set")
    parser.add_argument("--no-trim", dest="trim", action="store_false",
                        help="no malloc_trim(0) after each load (RSS as glibc leaves it)")
    parser.add_argument("--train-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = args.out.resolve()
    if args.train_one:
        train_one(args.train_one, out)
        return
    if not 1 <= args.shops <= len(SHOPS):
        parser.error(f"--shops: 1 to {len(SHOPS)}")
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    print(f"Shop models: {args.shops}, resident target {args.resident}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    shops = make_models(args.shops, out, args.retrain)
    print("\nTraining (base data + the shop's overlay, one child process each, cache off):")
    for name, model, seconds, _ in shops:
        print(f"  {name:<8} {seconds:6.0f} s   model {model.stat().st_size / 1e6:5.1f} MB packed")

    rss_start = rss_mb()
    import rasa  # noqa: F401  (TensorFlow and the rest come with it)
    from rasa.core.agent import Agent  # noqa: F401
    from rasa.utils.log_utils import configure_structlog

    import bot  # noqa: F401  (installs bot/speedups.py, as every `rasa run` does)

    # As `rasa run` does: without it, structlog prints every parse's debug line to stdout.
    configure_structlog(logging.WARNING)

    rss_rasa = rss_mb()
    print(f"\nRSS at start {rss_start:.0f} MB, after `import rasa` {rss_rasa:.0f} MB")
    times = ComponentTimes()
    times.install()
    loop = asyncio.new_event_loop()

    print("\nLoading (RSS in MB; '+held' = after the first parse minus before the load,"
          " '+trimmed' = after malloc_trim(0) minus before" + (
              "; each load starts trimmed):" if args.trim else
              "; --no-trim: nothing trimmed between loads, 'trimmed' = 'parsed'):"))
    print(HEADER)
    base = load("base", args.base, loop, args.trim)
    print(row(base), " <- the first parse loads the shared MiniLM encoder", flush=True)
    times.on = True
    distinct: list[Loaded] = []
    for name, model, _, _ in shops:
        distinct.append(load(name, model, loop, args.trim))
        print(row(distinct[-1]), flush=True)

    # Latency: every model parses the same messages, interleaved, after a warm-up round.
    messages = list(BASE_MESSAGES) + [probe for *_, probe in shops]
    models = [base, *distinct]
    print(f"\nParse latency: {len(messages)} messages x {args.rounds} rounds per model, "
          "interleaved, warm", file=sys.stderr, flush=True)
    for text in messages:
        for m in models:
            loop.run_until_complete(m.agent.parse_message(text))
    for _ in range(args.rounds):
        for text in messages:
            for m in models:
                started = time.perf_counter()
                loop.run_until_complete(m.agent.parse_message(text))
                m.ms.append((time.perf_counter() - started) * 1000)
    print(f"\nParse latency (Agent.parse_message, NLU only; {len(messages)} messages x "
          f"{args.rounds} rounds, interleaved):")
    print(f"{'model':<14} {'p50 ms':>7} {'p95 ms':>7} {'p50-base':>9}   its own probe")
    base_p50 = pct(base.ms, 50)
    probes = [messages[0], *(probe for *_, probe in shops)]
    for m, probe in zip(models, probes, strict=True):
        parsed = loop.run_until_complete(m.agent.parse_message(probe))
        intent = parsed["intent"]
        print(f"{m.name:<14} {pct(m.ms, 50):7.1f} {pct(m.ms, 95):7.1f} "
              f"{pct(m.ms, 50) - base_p50:+9.1f}   {probe!r} -> {intent['name']} "
              f"{intent['confidence']:.2f}")

    # More shop models resident: copies of the trained ones.
    copies: list[Loaded] = []
    while len(distinct) + len(copies) < args.resident:
        name, model, _, _ = shops[len(copies) % len(shops)]
        copy_name = f"{name}#{len(copies) // len(shops) + 2}"
        copies.append(load(copy_name, model, loop, args.trim, copy=True))
        if len(copies) == 1:
            print(f"\nLoading copies of the {len(shops)} trained models until {args.resident} "
                  "shop models are resident (each copy is its own Agent from the same archive):")
            print(HEADER)
        print(row(copies[-1]), flush=True)
    every = [base, *distinct, *copies]
    check = [loop.run_until_complete(m.agent.parse_message(messages[0]))["intent"]["name"]
             for m in every]
    rss_all, rss_trimmed = rss_mb(), trimmed_mb()
    print(f"\nResident: base + {len(distinct)} distinct + {len(copies)} copies = "
          f"{len(every)} agents; RSS {rss_all:.0f} MB ({rss_trimmed:.0f} MB after malloc_trim); "
          f"all parse {messages[0]!r} as {sorted(set(check))}")

    # Where it goes.
    print("\nLoad per component (the shop models' loads; seconds and RSS added, means):")
    for name in sorted(times.seconds, key=lambda n: -sum(times.seconds[n])):
        print(f"  {name:<34} {statistics.mean(times.seconds[name]) * 1000:8.0f} ms "
              f"{statistics.mean(times.mb[name]):+7.1f} MB")
    print("Model archive per component (unpacked bytes; base / first shop):")
    base_sizes, shop_sizes = component_sizes(args.base), component_sizes(shops[0][1])
    for key in sorted(shop_sizes, key=lambda k: -shop_sizes[k])[:6]:
        print(f"  {key:<46} {base_sizes.get(key, 0) / 1e6:8.2f} / {shop_sizes[key] / 1e6:8.2f} MB")

    # Summary.
    extra_held = [m.after_parse - m.before for m in distinct + copies]
    extra_trim = [m.after_trim - m.before for m in distinct + copies]
    loads = [m.load_s for m in distinct + copies]
    p50s = [pct(m.ms, 50) - base_p50 for m in distinct]
    train_s = [s for _, _, s, _ in shops]
    resident_ok = len(distinct) + len(copies) >= 20 and all(c == check[0] for c in check)

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"\nSummary against issue 15's targets ({len(distinct)} distinct shop models, "
          f"{len(copies)} copies):")
    trimmed_note = (f", {statistics.mean(extra_trim):5.0f} MB after malloc_trim (max "
                    f"{max(extra_held):.0f} / {max(extra_trim):.0f})" if args.trim else
                    f" (max {max(extra_held):.0f}; no malloc_trim between loads)")
    print(f"  memory per extra shop model  mean {statistics.mean(extra_held):5.0f} MB held"
          f"{trimmed_note}  target <= {TARGET_EXTRA_MB}: "
          f"{verdict(statistics.mean(extra_held) <= TARGET_EXTRA_MB)}")
    print(f"  (all {len(distinct) + len(copies)} shop models together: RSS "
          f"{rss_all - base.after_trim:+.0f} MB over base-only, "
          f"{(rss_all - base.after_trim) / (len(distinct) + len(copies)):.0f} MB a model)")
    print(f"  model load                   mean {statistics.mean(loads):5.2f} s, max "
          f"{max(loads):.2f} s  target <= {TARGET_LOAD_S:.0f}: "
          f"{verdict(max(loads) <= TARGET_LOAD_S)}")
    print(f"  parse p50 vs base            {', '.join(f'{p:+.1f}' for p in p50s)} ms (base "
          f"{base_p50:.1f})  target within +-{TARGET_P50_MS:.0f}: "
          f"{verdict(all(abs(p) <= TARGET_P50_MS for p in p50s))}")
    print(f"  resident shop models         {len(distinct) + len(copies)} ({len(copies)} of them "
          f"copies), RSS {rss_all:.0f} MB  target 20: {verdict(resident_ok)}")
    print(f"  training base + overlay      {', '.join(f'{s:.0f}' for s in train_s)} s  target <= "
          f"{TARGET_TRAIN_S}: {verdict(max(train_s) <= TARGET_TRAIN_S)}")
    loop.close()


if __name__ == "__main__":
    main()
