"""The arithmetic of a model version's evaluation (bot/evaluate_shop.py): which examples are
held out, per-intent precision/recall/F1, which test conversations changed outcome, and how
visitors' messages would be routed differently. Pure functions over plain values: no Rasa here
(its imports stay in bot/evaluate_shop.py), so our 3.11 tests run them as they are.

The held-out split is a hash of the example's text, not a random draw: the same example is
held out in every data set, so the base's held-out figures are computed once (cached by the
data's fingerprint) and a shop's overlay only adds its own examples to both sides. One in
HOLD_OUT is held out; an intent the hash leaves with nothing held out (small intents can fall
that way) gets its last example by hash order held out, so every intent with MIN_EXAMPLES or
more is scored. Intents with fewer are trained on whole and not scored: one example tells
nothing about a classifier.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

HOLD_OUT = 5  # 1 in 5 examples held out
MIN_EXAMPLES = 5  # an intent with fewer is not scored
EXAMPLES = 3  # texts shown per routing change
FALLBACK = "nlu_fallback"  # counts as wrong on held-out examples


def _rank(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.strip().casefold().encode()).digest()[:8], "big")


def split(examples: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]],
                                                        list[tuple[str, str]]]:
    """(train, held out) of (text, intent) pairs, deterministic (see the module doc)."""
    by_intent: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for text, intent in examples:
        by_intent[intent].append((text, intent))
    train: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for intent in sorted(by_intent):
        pairs = sorted(by_intent[intent], key=lambda pair: _rank(pair[0]))
        if len(pairs) < MIN_EXAMPLES:
            train.extend(pairs)
            continue
        out = [pair for pair in pairs if _rank(pair[0]) % HOLD_OUT == 0]
        if not out:
            out = [pairs[-1]]
        chosen = {id(pair) for pair in out}
        held.extend(out)
        train.extend(pair for pair in pairs if id(pair) not in chosen)
    return train, held


def unscored(examples: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Intents with fewer than MIN_EXAMPLES examples and how many they have: `split` trains on
    them whole, so no score says whether they work (a designer's new intent often starts so)."""
    counts = Counter(intent for _, intent in examples)
    return {intent: n for intent, n in sorted(counts.items()) if n < MIN_EXAMPLES}


def metrics(pairs: Iterable[tuple[str, str | None]]) -> dict[str, Any]:
    """Per-intent precision, recall, F1 and support of (true, predicted) intents, with the
    accuracy and the macro F1 over the true intents. A prediction of nlu_fallback (or none)
    is wrong; it takes precision from no intent."""
    truth: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    right: Counter[str] = Counter()
    total = 0
    for true, guess in pairs:
        total += 1
        truth[true] += 1
        if guess is not None and guess != FALLBACK:
            predicted[guess] += 1
        if guess == true:
            right[true] += 1
    intents: dict[str, dict[str, float | int]] = {}
    for intent in sorted(truth):
        precision = right[intent] / predicted[intent] if predicted[intent] else 0.0
        recall = right[intent] / truth[intent]
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        intents[intent] = {"precision": round(precision, 4), "recall": round(recall, 4),
                           "f1": round(f1, 4), "support": truth[intent]}
    return {"intents": intents,
            "accuracy": round(sum(right.values()) / total, 4) if total else 0.0,
            "macro_f1": round(sum(float(m["f1"]) for m in intents.values()) / len(intents), 4)
            if intents else 0.0,
            "examples": total}


def routing(messages: Sequence[str], before: Sequence[str | None],
            after: Sequence[str | None]) -> dict[str, Any]:
    """Messages whose intent differs between two models, grouped by (from, to), largest
    group first (then by names), with up to EXAMPLES texts each."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for text, old, new in zip(messages, before, after, strict=True):
        if old != new:
            groups[(old or FALLBACK, new or FALLBACK)].append(text)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return {"messages": len(messages), "changed": sum(len(t) for t in groups.values()),
            "changes": [{"from": old, "to": new, "count": len(texts),
                         "examples": texts[:EXAMPLES]} for (old, new), texts in ordered]}


Outcome = tuple[str, str, bool]  # (story, file, passed)


def compare_tests(candidate: Sequence[Outcome],
                  against: Sequence[Outcome]) -> dict[str, Any]:
    """Both models' test results, the stories whose outcome changed and the candidate's
    failures. A story one side did not run (it could not be read against that model's
    domain) is left out of `changed`."""
    def summary(outcomes: Sequence[Outcome]) -> dict[str, int]:
        passed = sum(1 for _, _, ok in outcomes if ok)
        return {"passed": passed, "failed": len(outcomes) - passed, "total": len(outcomes)}

    def word(ok: bool) -> str:
        return "passed" if ok else "failed"

    before: Mapping[tuple[str, str], bool] = {(story, file): ok for story, file, ok in against}
    changed = [{"story": story, "file": file, "before": word(before[(story, file)]),
                "after": word(ok)}
               for story, file, ok in candidate
               if (story, file) in before and before[(story, file)] != ok]
    return {"candidate": summary(candidate), "against": summary(against), "changed": changed,
            "failed": [{"story": story, "file": file} for story, file, ok in candidate
                       if not ok]}
