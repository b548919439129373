"""Right document or abstention: how the knowledge benches judge and print one answer per question.

A covered question is answered right when the answer's first source is one of the documents
that cover it (bench/data/knowledge_questions.yml: `source` and `also`). An uncovered one
(bench/data/knowledge_uncovered.yml) is right when the bot abstains. Everything else is a
failure with one cause: sent to a flow (routing), an abstention although the documents cover
it, or an answer from another document (retrieval). Of the right answers, those that say
every evidence phrase of the question are counted too: the passage quoted, not only the
document. bench/knowledge.py judges answers made without routing, bench/knowledge_e2e.py the
replies of the running bot.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.knowledge import Question

EMPHASIS = re.compile(r"\*\*|__|`")
COVERED_TARGET = 0.93
UNCOVERED_TARGET = 0.85


@dataclass(frozen=True)
class Outcome:
    kind: str  # "answered" | "abstained" | "routed"
    document: str | None = None  # the first source's document, when answered
    detail: str = ""  # the first source's title, or the intent and actions a flow ran
    text: str = ""  # what the answer says


def is_right(question: Question, outcome: Outcome) -> bool:
    return outcome.kind == "answered" and outcome.document in question.covering


def quotes_evidence(question: Question, outcome: Outcome) -> bool:
    """A right answer that says what answers the question: every evidence phrase of it in the
    answer's text or its source's title. A document can cover several topics (account.md:
    password, newsletter, deletion, ...); this tells the passage quoted from the document.
    Evidence is written as the page is (Markdown emphasis, table cells between pipes); an
    answer says it without the markup and a table row as "header: value", so each cell of a
    phrase counts on its own and emphasis marks not at all."""
    said = f"{outcome.text} {outcome.detail}".casefold()
    return is_right(question, outcome) and all(
        cell in said for phrase in question.evidence
        for cell in (c.strip() for c in EMPHASIS.sub("", phrase).casefold().split("|")) if cell)


def cause(question: Question, outcome: Outcome) -> str:
    if outcome.kind == "routed":
        return "routed to a flow"
    if outcome.kind == "abstained":
        return "abstained"
    return "wrong document"


def report(covered: Sequence[Question], answers: Sequence[Outcome],
           uncovered: Sequence[str], uncovered_answers: Sequence[Outcome],
           groups: dict[str, str], show_failures: bool = True) -> dict[str, float]:
    """Print per-set, per-topic and per-cause numbers; return the headline shares."""
    right = [is_right(q, o) for q, o in zip(covered, answers, strict=True)]
    print(f"  covered questions answered from a covering document: {sum(right)}/{len(right)} = "
          f"{sum(right) / max(len(right), 1):.1%}   (target >= {COVERED_TARGET:.0%})")
    quoted = sum(quotes_evidence(q, o) for q, o in zip(covered, answers, strict=True))
    print(f"    of those, saying every evidence phrase of the question (the passage): "
          f"{quoted}/{sum(right)} = {quoted / max(sum(right), 1):.1%}")
    reached = [r for r, o in zip(right, answers, strict=True) if o.kind != "routed"]
    if len(reached) < len(right):
        print(f"    of those that reached the knowledge route (retrieval and abstention alone): "
              f"{sum(reached)}/{len(reached)} = {sum(reached) / max(len(reached), 1):.1%}")
    for group, label in groups.items():
        picked = [r for q, r in zip(covered, right, strict=True) if q.group == group]
        if picked:
            print(f"    {label:<16} {sum(picked):>4}/{len(picked):<4} = "
                  f"{sum(picked) / len(picked):.1%}")
    by_topic: dict[str, list[tuple[Question, Outcome]]] = defaultdict(list)
    for q, o in zip(covered, answers, strict=True):
        by_topic[q.topic].append((q, o))
    print(f"    {'topic':<26} {'n':>4} {'right':>7} {'routed':>7} {'abstained':>10} "
          f"{'wrong doc':>10}")
    for topic in sorted(by_topic, key=lambda t: (not any(q.group != "questions"
                                                         for q, _ in by_topic[t]), t)):
        pairs = by_topic[topic]
        ok = sum(is_right(q, o) for q, o in pairs)
        counts = {c: sum(not is_right(q, o) and cause(q, o) == c for q, o in pairs)
                  for c in ("routed to a flow", "abstained", "wrong document")}
        print(f"    {topic:<26} {len(pairs):>4} {ok / len(pairs):>7.0%} "
              f"{counts['routed to a flow']:>7} {counts['abstained']:>10} "
              f"{counts['wrong document']:>10}")
    abstained = [o.kind == "abstained" for o in uncovered_answers]
    routed = sum(o.kind == "routed" for o in uncovered_answers)
    print(f"  uncovered questions that abstain: {sum(abstained)}/{len(abstained)} = "
          f"{sum(abstained) / max(len(abstained), 1):.1%}   (target >= {UNCOVERED_TARGET:.0%}; "
          f"{routed} went to a flow)")
    if show_failures:
        failures: dict[str, list[str]] = defaultdict(list)
        for q, o in zip(covered, answers, strict=True):
            if not is_right(q, o):
                why = cause(q, o)
                shown = f"{q.text!r} (wants {'/'.join(q.covering)})"
                if why == "routed to a flow":
                    shown += f" -> {o.detail}"
                elif why == "wrong document":
                    shown += f" -> {o.document}: {o.detail}"
                failures[why].append(shown)
        for why in ("routed to a flow", "abstained", "wrong document"):
            if failures[why]:
                print(f"  failures, {why} ({len(failures[why])}):")
                print("\n".join(f"    {line}" for line in failures[why]))
        answered = [f"{text!r} -> " + (f"{o.document}: {o.detail}" if o.kind == "answered"
                                       else o.detail)
                    for text, o in zip(uncovered, uncovered_answers, strict=True)
                    if o.kind != "abstained"]
        if answered:
            print(f"  uncovered but not abstained ({len(answered)}):")
            print("\n".join(f"    {line}" for line in answered))
    return {"covered": sum(right) / max(len(right), 1),
            "uncovered": sum(abstained) / max(len(abstained), 1)}
