"""CLINC150 as a public NLU benchmark: our NLU pipeline trained on its train split, scored on val.

CLINC150 (Larson et al., EMNLP 2019; `../shared/data/clinc150/`) has 150 intents in 10 domains
plus out-of-scope queries. This trains the project's own pipeline (config.yml, with whatever
components it names) in Rasa's environment on `train` + `oos_train` (out-of-scope as an intent
`oos`), loads the model in a Rasa server on loopback and parses every `val` + `oos_val` message
through POST /model/parse, one at a time, as a visitor's turn would be. It prints:
- in-scope accuracy: the predicted intent is the labelled one (nlu_fallback counts as wrong), and
  the share of in-scope messages that fell back;
- out-of-scope recall: out-of-scope messages predicted `oos` or nlu_fallback;
- parse latency p50/p95 (ms, HTTP round trip included) and the training time;
- the most frequent confusions, and each figure against the issue's target.

Usage, from the repository root:
    .venv/bin/python -m bench.clinc                  # train (minutes), then score
    .venv/bin/python -m bench.clinc --limit 20       # 20 examples an intent: a quick smoke run
Options: --data FILE --config FILE --keep (keep the work folder: data, model, Rasa's log)
Results go to stdout, progress (training's own output included) to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.turns import pct  # noqa: E402
from tests.integration.stack import RASA, free_port  # noqa: E402

log = logging.getLogger("bench.clinc")

DATA = ROOT.parent / "shared" / "data" / "clinc150" / "clinc150_train_val.json"
OOS = "oos"
FALLBACK = "nlu_fallback"
TARGET_IN_SCOPE, TARGET_OOS_RECALL, TARGET_TRAIN_SECONDS = 0.965, 0.70, 300.0  # issue 11


@dataclass(frozen=True)
class Example:
    text: str
    intent: str


@dataclass(frozen=True)
class Scores:
    in_scope: int
    in_scope_correct: int
    in_scope_fallback: int
    oos: int
    oos_caught: int
    confusions: Counter[tuple[str, str]]  # (labelled, predicted) for every wrong prediction

    @property
    def accuracy(self) -> float:
        return self.in_scope_correct / self.in_scope if self.in_scope else 0.0

    @property
    def fallback_share(self) -> float:
        return self.in_scope_fallback / self.in_scope if self.in_scope else 0.0

    @property
    def oos_recall(self) -> float:
        return self.oos_caught / self.oos if self.oos else 0.0


def load(path: Path, limit: int | None = None) -> tuple[list[Example], list[Example]]:
    """(training examples, evaluation examples); `limit` keeps that many of each intent's
    training examples (evaluation is always the whole val split)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    train = [Example(str(t), str(i)) for t, i in [*raw["train"], *raw["oos_train"]]]
    if limit is not None:
        kept: Counter[str] = Counter()
        few = []
        for example in train:
            kept[example.intent] += 1
            if kept[example.intent] <= limit:
                few.append(example)
        train = few
    evaluation = [Example(str(t), str(i)) for t, i in [*raw["val"], *raw["oos_val"]]]
    return train, evaluation


def nlu_yaml(examples: list[Example]) -> str:
    """Rasa's NLU training data format: one block of examples an intent."""
    by_intent: dict[str, list[str]] = {}
    for example in examples:
        by_intent.setdefault(example.intent, []).append(" ".join(example.text.split()))
    blocks = [{"intent": intent, "examples": "".join(f"- {text}\n" for text in texts)}
              for intent, texts in sorted(by_intent.items())]
    return yaml.safe_dump({"version": "3.1", "nlu": blocks}, sort_keys=False, width=1_000_000)


def score(evaluation: list[Example], predicted: list[str]) -> Scores:
    in_scope = [(e, p) for e, p in zip(evaluation, predicted, strict=True) if e.intent != OOS]
    oos = [(e, p) for e, p in zip(evaluation, predicted, strict=True) if e.intent == OOS]
    wrong = Counter((e.intent, p) for e, p in in_scope if p != e.intent)
    wrong.update((e.intent, p) for e, p in oos if p not in (OOS, FALLBACK))
    return Scores(
        in_scope=len(in_scope),
        in_scope_correct=sum(p == e.intent for e, p in in_scope),
        in_scope_fallback=sum(p == FALLBACK for _, p in in_scope),
        oos=len(oos),
        oos_caught=sum(p in (OOS, FALLBACK) for _, p in oos),
        confusions=wrong,
    )


def train(work: Path, config: Path, examples: list[Example]) -> tuple[Path, float]:
    """Train an NLU-only model with our config in Rasa's environment; (model, seconds)."""
    data = work / "clinc_nlu.yml"
    data.write_text(nlu_yaml(examples), encoding="utf-8")
    log.info("training %s on %d examples of %d intents (Rasa's progress follows)",
             config.name, len(examples), len({e.intent for e in examples}))
    started = time.monotonic()
    subprocess.run([str(RASA), "train", "nlu", "--config", str(config), "--nlu", str(data),
                    "--out", str(work / "models"), "--fixed-model-name", "clinc"],
                   cwd=ROOT, env=_rasa_env(), check=True,
                   stdout=sys.stderr, stderr=sys.stderr)
    return work / "models" / "clinc.tar.gz", time.monotonic() - started


def _rasa_env() -> dict[str, str]:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(ROOT)}


def serve(work: Path, model: Path, timeout: float = 300.0) -> tuple[subprocess.Popen[bytes], str]:
    """A Rasa server with the model on a free loopback port, once the model is loaded."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = (work / "rasa.log").open("wb")
    proc = subprocess.Popen([str(RASA), "run", "--enable-api", "-i", "127.0.0.1", "-p", str(port),
                             "--model", str(model)], cwd=work, env=_rasa_env(),
                            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"Rasa exited early; see {work / 'rasa.log'}")
        try:
            if httpx.get(f"{url}/status", timeout=3).status_code == 200:
                log.info("Rasa ready after %.0f s", time.monotonic() - started)
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"Rasa not ready after {timeout:.0f} s; see {work / 'rasa.log'}")


def parse_all(url: str, evaluation: list[Example]) -> tuple[list[str], list[float]]:
    """Each message's predicted intent and its parse latency (ms), one request at a time."""
    predicted: list[str] = []
    latencies: list[float] = []
    with httpx.Client(timeout=30) as client:
        for done, example in enumerate(evaluation, 1):
            started = time.perf_counter()
            response = client.post(f"{url}/model/parse", json={"text": example.text})
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            predicted.append(str((response.json().get("intent") or {}).get("name")))
            if done % 500 == 0 or done == len(evaluation):
                log.info("parsed %d/%d", done, len(evaluation))
    return predicted, latencies


def report(scores: Scores, latencies: list[float], train_seconds: float, examples: int) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = [
        f"CLINC150 val, our pipeline trained on {examples} examples ({train_seconds:.0f} s)",
        f"in-scope accuracy   {scores.accuracy:7.1%}  ({scores.in_scope_correct}/"
        f"{scores.in_scope}; {scores.fallback_share:.1%} fell back)  target "
        f"{TARGET_IN_SCOPE:.1%}: {mark(scores.accuracy >= TARGET_IN_SCOPE)}",
        f"out-of-scope recall {scores.oos_recall:7.1%}  ({scores.oos_caught}/{scores.oos})"
        f"  target {TARGET_OOS_RECALL:.0%}: {mark(scores.oos_recall >= TARGET_OOS_RECALL)}",
        f"training time       {train_seconds:7.0f} s  target {TARGET_TRAIN_SECONDS:.0f} s: "
        f"{mark(train_seconds <= TARGET_TRAIN_SECONDS)}",
        f"parse latency       p50 {pct(latencies, 50):.1f} ms, p95 {pct(latencies, 95):.1f} ms "
        f"(sequential, HTTP included)",
        "most frequent confusions (labelled -> predicted):",
    ]
    lines += [f"  {n:3d}  {label} -> {got}" for (label, got), n in
              scores.confusions.most_common(10)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clinc",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--limit", type=int, help="training examples an intent (smoke runs)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per parse otherwise
    if not args.data.is_file():
        log.error("no CLINC150 data at %s (--data FILE)", args.data)
        return 2
    training, evaluation = load(args.data, args.limit)
    work = Path(tempfile.mkdtemp(prefix="bench-clinc-"))
    proc = None
    try:
        model, seconds = train(work, args.config.resolve(), training)
        proc, url = serve(work, model)
        predicted, latencies = parse_all(url, evaluation)
        print(report(score(evaluation, predicted), latencies, seconds, len(training)))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if args.keep:
            log.info("work folder kept: %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
