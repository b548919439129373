"""Gap mining: the topics the bot could not handle, offered as training examples for an intent.

A gap is one topic of the shop's unanswered messages (admin_api/topics.py groups them:
fallbacks, abstentions, handoffs after a second misunderstanding). Its `id` is a short hash of
the shop and its representative question, so a topic keeps its id across calls while that
question stands for it (and another shop's id never matches). What is suggested:

- examples: every phrasing of the topic, cleaned (`clean`): order numbers, emails, phone
  numbers, cards (with their security codes and expiry dates) and links taken out (they are
  the visitor's, and a number in an example teaches the order_number regex nothing),
  brackets dropped (Rasa would read `[..](..)` as an entity annotation), spacing and stray
  punctuation trimmed; repeats folded; phrasings already in the base or the shop's drafts
  left out (training has them); at most MAX_EXAMPLES; the topic's question is shown masked
  (admin_api/visitor_text.py);
- an intent: the one NLU gave most of the topic's messages (more than half of them, as stored
  with each turn), when it exists (base or drafts) and is not a catch-all (nlu_fallback,
  out_of_scope, ask_question: those say only that NLU found no flow for it); otherwise a new
  name from the question's first MAX_WORDS words that carry meaning (`new_intent_name`).

Accepting (`accept`) adds the designer's examples under the intent to the NLU draft, without
those already in the base or drafts, and lists a new intent in the domain draft of the same
name; drafts.update_drafts writes both or neither, appending.py keeps the designer's text.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import yaml

from admin_api.clusters import Cluster, fold_key
from admin_api.training.appending import add_examples, add_intent
from admin_api.training.base import base_data
from admin_api.training.nodes import DEFAULT_INTENTS, LOADER, NAME, Definitions
from admin_api.training.reader import parse
from core import cards

log = logging.getLogger(__name__)

MAX_EXAMPLES = 30  # suggested per gap
MAX_WORDS = 4  # in a new intent's name
MAX_INTENT = 64  # characters of an intent's name (messages.intent keeps 100)
CATCH_ALLS = frozenset({"nlu_fallback", "out_of_scope", "ask_question"})
# Rasa's own intents: a designer may not feed these examples.
RESERVED = frozenset(DEFAULT_INTENTS - {"out_of_scope"})

_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# Digits with separators (7 or more digits: `_long`): phone, card or tracking numbers.
_PHONE = re.compile(r"\+?\d[\d\s().-]{5,}\d")
_ORDER = re.compile(r"#\s?\w+|(?<![\w#@.])\d{4,}(?![\w@])")  # patterns.yml: #?\d{4,8}
_MASKED_CARD = re.compile(r"\*{4}(?: \*{4}){2} \d{4}")
_BRACKETS = re.compile(r"[\[\]{}]")
_EMPTY_PARENS = re.compile(r"\(\s*\)")
_SPACE_BEFORE = re.compile(r"\s+([?!.,;:)])")
_SPACE_AFTER = re.compile(r"\(\s+")
# Linear in the line's length: a text holds no `[` (each `[` then scans only to the next
# bracket) and an entity or JSON part is bounded, since "[[[[..." or "[a](" * 30,000 made
# the unbounded pattern quadratic (minutes for one line of a draft, the admin service
# held for every shop); no annotation a designer writes is that long.
_ANNOTATION = re.compile(r"\[([^\[\]\n]*)\](?:\([^)\n]{0,300}\)|\{[^}\n]{0,300}\})")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("""a an the i im id ive you your youre u ur we our us me my mine it its
this that these those there here is are am was were be been being do does did doing can
could would will should shall may might must have has had having to of for in on at by with
from about into and or but if so as than then just also any some hi hello hey please pls plz
thanks thank thx what which who whom whose when where why how tell know want wanted need
like get got let lets ok okay oh yes yeah no dont cant wont isnt arent""".split())


def gap_id(shop: str, question: str) -> str:
    return hashlib.sha256(f"{shop}\n{fold_key(question)}".encode()).hexdigest()[:16]


def clean(text: str) -> str | None:
    """A visitor's message as a training example, or None when too little is left."""
    cleaned = cards.EXPIRY.sub(" ", cards.SECURITY_CODE.sub(" ", text))  # "cvv 123"
    cleaned = _MASKED_CARD.sub(" ", cleaned)  # as the gateway keeps a card (core/cards.py)
    cleaned = _EMAIL.sub(" ", cleaned)
    cleaned = _LINK.sub(" ", cleaned)
    cleaned = _PHONE.sub(_long, cleaned)
    cleaned = _ORDER.sub(" ", cleaned)
    cleaned = _BRACKETS.sub(" ", cleaned)
    cleaned = _EMPTY_PARENS.sub(" ", cleaned)
    cleaned = _SPACE_BEFORE.sub(r"\1", " ".join(cleaned.split()))
    cleaned = _SPACE_AFTER.sub("(", cleaned)
    cleaned = cleaned.strip(" ,;:-–—/").strip()
    # One word left ("order" from "order 12345") says too little to train on.
    if len(_WORD.findall(cleaned.casefold())) < 2 or len(cleaned) > 300:
        return None
    return cleaned


def _long(match: re.Match[str]) -> str:
    return " " if sum(c.isdigit() for c in match.group()) >= 7 else match.group()


def example_key(text: str) -> str:
    """When two examples are the same one: entity annotations as their text, case, spacing
    and end punctuation ignored."""
    return fold_key(_ANNOTATION.sub(r"\1", text)).rstrip(" ?!.")


def new_intent_name(question: str, fallback: str) -> str:
    """snake_case from the question's first words that carry meaning: "Do you offer gift
    wrapping?" -> offer_gift_wrapping; `fallback` when none does."""
    plain = unicodedata.normalize("NFKD", clean(question) or "").encode("ascii", "ignore")
    words = [w for w in _WORD.findall(plain.decode().casefold().replace("'", ""))
             if w not in _STOP and not w.isdigit()]
    name = "_".join(words[:MAX_WORDS])[:MAX_INTENT].strip("_")
    return name or fallback


@dataclass(frozen=True)
class Known:
    """What training already has: intents (declared or with examples) and example keys."""

    declared: frozenset[str]  # in the base's or a domain draft's intents, or Rasa's own
    intents: frozenset[str]  # declared, or with examples somewhere
    examples: frozenset[str]  # example_key of every intent example


@functools.cache
def _base_examples() -> frozenset[str]:
    base = base_data()
    return frozenset(key for f in base.files if f.kind == "nlu"
                     for key in _examples_of(base.read(f)))


def _examples_of(text: str) -> Iterable[str]:
    try:
        data = yaml.load(text, Loader=LOADER)
    except yaml.YAMLError:
        return
    items = data.get("nlu") if isinstance(data, dict) else None
    for item in items if isinstance(items, list) else ():
        block = item.get("examples") if isinstance(item, dict) and "intent" in item else None
        for line in block.splitlines() if isinstance(block, str) else ():
            line = line.strip()
            if line.startswith("- ") and line[2:].strip():
                yield example_key(line[2:].strip())


def known(drafts: Mapping[tuple[str, str], str]) -> Known:
    """From the base and the shop's drafts ((kind, name) -> content)."""
    defs = Definitions()
    defs.merge(base_data().defs)
    examples = set(_base_examples())
    for (kind, name), content in drafts.items():
        if kind in ("nlu", "domain"):
            defs.merge(parse(f"{kind}/{name}.yml", kind, content).defs)
        if kind == "nlu":
            examples.update(_examples_of(content))
    declared = frozenset(defs.intents) | DEFAULT_INTENTS
    return Known(declared, declared | frozenset(defs.examples), frozenset(examples))


# --- gaps --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gap:
    id: str
    question: str
    count: int
    examples: tuple[str, ...]
    suggested_intent: str
    intent_exists: bool


def gaps_of(shop: str, found: Sequence[Cluster], intents: Mapping[str, Counter[str]],
            already: Known) -> list[Gap]:
    """The topics as gaps, largest first; topics with nothing left to train on are left out
    (all their phrasings already trained, or only order numbers and addresses)."""
    gaps: list[Gap] = []
    for topic in found:
        examples = suggest_examples((text for text, _ in topic.members or (
            (topic.question, topic.count),)), already)
        if not examples:
            continue
        ident = gap_id(shop, topic.question)
        intent = _voted(topic, intents, already) or new_intent_name(topic.question,
                                                                    f"gap_{ident[:8]}")
        gaps.append(Gap(ident, topic.question, topic.count, tuple(examples), intent,
                        intent in already.intents))
    return gaps


def suggest_examples(texts: Iterable[str], already: Known) -> list[str]:
    chosen: dict[str, str] = {}
    for text in texts:
        cleaned = clean(text)
        if cleaned is None:
            continue
        key = example_key(cleaned)
        if key and key not in already.examples and key not in chosen:
            chosen[key] = cleaned
        if len(chosen) >= MAX_EXAMPLES:
            break
    return list(chosen.values())


def _voted(topic: Cluster, intents: Mapping[str, Counter[str]], already: Known) -> str | None:
    """The intent NLU gave more than half of the topic's messages, if it is one to suggest."""
    votes: Counter[str] = Counter()
    for text, _ in topic.members:
        votes.update(intents.get(fold_key(text), Counter()))
    if not votes:
        return None
    intent, count = votes.most_common(1)[0]
    if count * 2 <= topic.count or intent in CATCH_ALLS or intent in RESERVED \
            or intent not in already.intents:
        return None
    return intent


# --- accepting ---------------------------------------------------------------------------

class BadIntent(ValueError):
    """Not a name Rasa accepts for an intent, or one of Rasa's own."""


def check_intent(name: str) -> str:
    if not NAME.match(name) or len(name) > MAX_INTENT or not re.fullmatch(r"\w+", name):
        raise BadIntent(f"'{name}' is not an intent name: letters, digits and _ only (no "
                        f"spaces, no leading '/'), up to {MAX_INTENT} characters, e.g. "
                        "ask_gift_wrapping")
    if name in RESERVED:
        raise BadIntent(f"'{name}' is Rasa's own intent; examples cannot be added to it")
    return name


@dataclass(frozen=True)
class Accepted:
    intent: str
    new_intent: bool  # listed in the domain draft now
    added: tuple[str, ...]
    already_present: tuple[str, ...]
    changed: dict[tuple[str, str], str]  # (kind, name) -> new content


def accept(drafts: Mapping[tuple[str, str], str], draft: str, intent: str,
           examples: Sequence[str]) -> Accepted:
    """The drafts' new contents with `examples` under `intent` in nlu/<draft> (and `intent`
    in domain/<draft> when nothing declares it yet); `CannotAppend` from appending.py."""
    already = known(drafts)
    added: dict[str, str] = {}
    present: list[str] = []
    for example in examples:
        key = example_key(example)
        if key in already.examples or key in added:
            present.append(example)
        else:
            added[key] = example
    changed: dict[tuple[str, str], str] = {}
    declare = bool(added) and intent not in already.declared
    if added:
        changed[("nlu", draft)] = add_examples(drafts.get(("nlu", draft)), intent,
                                               list(added.values()))
    if declare:
        changed[("domain", draft)] = add_intent(drafts.get(("domain", draft)), intent)
    return Accepted(intent, declare, tuple(added.values()), tuple(present), changed)
