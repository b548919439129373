"""An answer without an LLM: the one to three sentences of a retrieved passage that answer the
question, or the product a catalogue row describes, in words.

Used when no ANTHROPIC_API_KEY is configured, when the API times out or fails, and while the
circuit breaker is open. It never invents anything: it quotes the shop's own text (a catalogue
row is put into words by knowledge/products.py, from the row's own values).

A passage is read as units: prose sentences, list items, and table rows (written with their
column headers: "EU 42: UK 8, US men 9, …"). Each unit is scored by the question's words it
holds, each weighted by how rare it is among the units of the passages considered (BM25's idf,
so "choose" outweighs "dhl" on the carriers page), and by a number of the question inside a
range it gives ("100" in a chest of "96–101"). The best unit is the answer; a sentence that
leans on the one before it ("It takes …") brings that one along, and units nearly as good
follow, in document order, up to three. When the best unit is a table row or a labelled list
item about something the question names ("Thursday", a shipping zone, "EU 42"), rows and
items about something else do not follow it unless the question names their whole key:
"can i ring you on thursday" gets Thursday's hours, not Monday's and Tuesday's before them,
and "... to the usa (United States, US & Canada)" the US & Canada row, not the United
Kingdom's. Of the 405 right answers of bench/knowledge.py, 8 changed: 6 to the one row or
item asked for, 2 swapped one unhelpful sentence for another; 32.5 -> 32.3 words on average.

A question the page asks itself is not an answer: a paragraph that opens with one ("Not quite
right?", "Forgot your password?") has its topic sentence after it, and a question found best
brings the sentence that answers it. Before, "whats your refund policy" got "Not quite right?
Our 30-day policy is in addition to your statutory 14-day right of withdrawal ...". On the 432
covered questions of bench/data/knowledge_questions.yml that the knowledge route answers,
every evidence phrase is now in the answer or its heading for 289 instead of 284 (the same
documents answer; 33.0 words on average instead of 32.6).

The question read here is the one retrieval searched (`Retrieval.asked`: fillers dropped,
typos corrected, the pages' own word added after the shopper's: "opt out" brings
"unsubscribe"), so the words scored are the ones the passages use. On the 448 questions of
bench/data/knowledge_questions.yml that changes little (the answer's document is a covering
one for 398 instead of 397: even half 198 vs 196, odd 200 vs 201), but a rewritten question
is the only one whose words match the pages when the shopper's do not.

Which of the top passages to quote: the fused ranking often puts a neighbouring section of
the right page first, so the lexical evidence above decides between passages whose meaning
(dense cosine) is about as close to the question; a clearly closer passage wins. On the 190
questions of bench/data/knowledge_questions.yml (measured on each half separately too) this
answers from the question's document for 167 (the previous word-overlap choice: 165), with
every evidence phrase in the answer or its heading for 136 (132), in 2.2 sentences and 32
words on average (3.3 and 41).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from knowledge.lexical import tokens
from knowledge.products import FILLER, Product, product_of
from knowledge.products import answer as product_answer
from knowledge.retrieval import Passage

CONSIDERED = 3  # passages; retrieval's order breaks ties
MAX_UNITS = 3
MAX_WORDS = 60  # beyond the best unit, which is always whole
NEARLY_AS_GOOD = 0.6  # of the best unit's score, for a unit to join it
LONG_ITEM = 45  # words; a longer list item is read sentence by sentence
CONTEXT_WEIGHT = 0.5  # a word of the heading or a list item's label, rather than of the unit
NUMBER_WEIGHT = 2.0  # a number of the question found in a table row
MEANING_WEIGHT = 5.0  # per unit of cosine, against a passage's share of the best lexical score

MARKUP = re.compile(r"\*\*|__|`|^#+\s*", re.M)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(“])")
LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")
RANGE = re.compile(r"(\d+(?:[.,]\d+)?)\s*[–-]\s*(\d+(?:[.,]\d+)?)")
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
# A sentence that starts like this leans on the one before it.
LEANS_BACK = re.compile(r"^(it|its|this|that|these|those|they|them|there|both|such|however|"
                        r"otherwise|then|also|but|so|instead|in that case|if so)\b", re.I)


@dataclass(frozen=True)
class Unit:
    text: str
    words: frozenset[str]
    context: frozenset[str]  # the heading's and a list item's label words
    block: int  # the paragraph, list or table it belongs to
    leans_back: bool = False
    first: bool = False  # opens its paragraph or list
    # Words that count as the unit's own but say nothing about how rare a word is: a table's
    # header (repeated in every row) and a catalogue row's product name (every line's topic).
    subject: frozenset[str] = frozenset()
    columns: tuple[tuple[frozenset[str], str], ...] = ()  # a table row: (header words, cell)
    key: frozenset[str] = frozenset()  # what a table row or labelled list item is about


@dataclass(frozen=True)
class Extract:
    passage: Passage
    text: str
    product: Product | None = None


def _sentence(text: str) -> str:
    text = text.rstrip(" ;,")
    return text if text.endswith((".", "!", "?", ":")) else f"{text}."


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _row_text(header: list[str] | None, cells: list[str]) -> str:
    """A table row in words: "EU 42: UK 8, US men 9" (a short key keeps its column's name),
    "Germany: Standard shipping €4.95, Express shipping €12.95"."""
    if not header or len(header) != len(cells):
        return " | ".join(cells)
    key = cells[0]
    if len(key) <= 4 and header[0]:
        key = f"{header[0]} {key}"
    rest = [f"{h} {c}" if h else c for h, c in zip(header[1:], cells[1:], strict=True) if c]
    return f"{key}: {', '.join(rest)}" if rest else key


def _prose_lines(lines: list[str]) -> list[str]:
    """Hard-wrapped lines of one paragraph joined back (a continuation starts in lower case
    after a line that does not end a sentence)."""
    out: list[str] = []
    for line in lines:
        if out and not out[-1].endswith((".", "!", "?", ":")) and line[:1].islower():
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return out


def units(passage: Passage) -> list[Unit]:
    """The passage's sentences, list items and table rows, in order."""
    body = passage.text.partition("\n")[2] or passage.text
    heading = frozenset(tokens(passage.heading))
    # A catalogue row's every line is about the product its heading names.
    own = heading if product_of(passage) is not None else frozenset()
    body = MARKUP.sub("", body)
    found: list[Unit] = []
    block = 0
    header: list[str] | None = None
    prose: list[str] = []

    def add(text: str, words: set[str] | frozenset[str], context: frozenset[str] = frozenset(),
            leans_back: bool = False, first: bool = False,
            columns: tuple[tuple[frozenset[str], str], ...] = ()) -> None:
        header_words = frozenset().union(*(h for h, _ in columns))
        key = frozenset(tokens(columns[0][1])) if columns else context
        found.append(Unit(_sentence(text), frozenset(words), heading | context, block,
                          leans_back=leans_back, first=first, subject=own | header_words,
                          columns=columns, key=key))

    def flush_prose() -> None:
        nonlocal block
        for paragraph in _prose_lines(prose):
            sentences = [p.strip() for p in SENTENCE_END.split(paragraph) if len(p.strip()) > 2]
            for n, sentence in enumerate(sentences):
                add(sentence, set(tokens(sentence)), leans_back=bool(LEANS_BACK.match(sentence)),
                    first=n == 0)
            block += 1
        prose.clear()

    lines = body.splitlines()
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            flush_prose()
            header = None
            continue
        if line.startswith("|"):
            flush_prose()
            if TABLE_RULE.match(line):
                continue
            cells = _cells(line)
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if TABLE_RULE.match(following):
                header = cells  # shown with each row, not on its own
                block += 1
                continue
            names = header if header and len(header) == len(cells) else [""] * len(cells)
            columns = tuple((frozenset(tokens(h)), c) for h, c in zip(names, cells, strict=True))
            add(_row_text(header, cells), set(tokens(" ".join(cells))), columns=columns)
            continue
        if LIST_ITEM.match(line):
            flush_prose()
            item = LIST_ITEM.sub("", line).strip()
            pieces = [item] if len(item.split()) <= LONG_ITEM else SENTENCE_END.split(item)
            label = frozenset(tokens(item.split(":", 1)[0])) if ":" in item[:60] else frozenset()
            for n, piece in enumerate(p.strip() for p in pieces):
                if len(piece) > 2:
                    add(piece, set(tokens(piece)), label, leans_back=n > 0, first=n == 0)
            block += 1
            continue
        prose.append(line)
    flush_prose()
    return found


def _same(asked: str, word: str) -> bool:
    """Equal, or one a short extension of the other: "cancel"/"cancell" (knowledge.lexical's
    stem of "cancelled"), "grip"/"grippy", "shrink"/"shrinkage"."""
    if asked == word:
        return True
    short, long_ = sorted((asked, word), key=len)
    longest = 3 if len(short) >= 6 else 2
    return len(short) >= 4 and long_.startswith(short) and len(long_) - len(short) <= longest


class _Scorer:
    """Question words weighted by rarity (BM25's idf) among the units of the passages
    considered, so that "choose" outweighs "dhl" on the carriers page."""

    def __init__(self, question: str, pool: Sequence[Unit]) -> None:
        self.asked = frozenset((set(tokens(question)) - FILLER) | set(NUMBER.findall(question)))
        n = len(pool)
        self.weights: dict[str, float] = {}
        for word in self.asked:
            df = sum(1 for u in pool if self._holds(word, u.words))
            self.weights[word] = max(0.1, math.log((n - df + 0.5) / (df + 0.5) + 1))
        self.numbers = [(float(x.replace(",", ".")), x) for x in NUMBER.findall(question)]
        self.strongest = max(self.weights.values(), default=1.0)

    @staticmethod
    def _holds(word: str, words: frozenset[str]) -> bool:
        return word in words or any(_same(word, w) for w in words)

    def __call__(self, unit: Unit) -> float:
        score = 0.0
        for word, weight in self.weights.items():
            if self._holds(word, unit.words | unit.subject):
                # A number the visitor gives that keys a table row ("EU 42") pins it down.
                row_key = unit.columns and NUMBER.fullmatch(word)
                score += NUMBER_WEIGHT * weight if row_key else weight
            elif self._holds(word, unit.context):
                score += CONTEXT_WEIGHT * weight
        return score + (self.strongest if self._in_range(unit) else 0.0)

    def keyed(self, unit: Unit, fully: bool = False) -> bool:
        """Is the unit a table row or labelled item about something the question names: a
        word of its key, or with `fully` every word ("United Kingdom" is not named by "United
        States")?"""
        if fully:
            return bool(unit.key) and all(self._holds(word, self.asked) for word in unit.key)
        return any(self._holds(word, unit.key) for word in self.asked)

    def numbered(self, unit: Unit) -> bool:
        """Does the unit hold a number of the question, or a range it falls in?"""
        return any(raw in unit.words for _, raw in self.numbers) or self._in_range(unit)

    def _in_range(self, unit: Unit) -> bool:
        """A number of the question inside a range the unit gives ("100" in "96–101"), which
        counts as much as the question's strongest word. In a table row only the columns the
        question names count (a chest of 100 cm is not a waist of 100 cm)."""
        if not self.numbers:
            return False
        cells = [c for h, c in unit.columns if h & self.asked] or \
            [c for _, c in unit.columns] or [unit.text]
        return any(float(low.replace(",", ".")) <= value <= float(high.replace(",", "."))
                   for cell in cells for low, high in RANGE.findall(cell)
                   for value, raw in self.numbers if raw not in unit.words)


def _asks(unit: Unit) -> bool:
    return unit.text.endswith("?")


def _choose(scorer: _Scorer, found: list[Unit]) -> str:
    if not found:
        return ""
    scores = [scorer(u) for u in found]
    best = max(range(len(found)), key=lambda i: (scores[i], -i))
    if scores[best] <= 0:  # nothing in it speaks to the question: its opening lines
        best = 0
    chosen = {best}
    opening = next((i for i in range(best, -1, -1) if found[i].first
                    and found[i].block == found[best].block), None)
    # A paragraph that opens with a question ("Not quite right?") states its topic in the
    # sentence after it; a question found best is answered by the sentence after it.
    while opening is not None and opening < best and _asks(found[opening]):
        opening += 1
    if _asks(found[best]) and best + 1 < len(found) and found[best + 1].block == found[best].block:
        chosen.add(best + 1)
    elif found[best].leans_back and best > 0 and found[best - 1].block == found[best].block:
        chosen.add(best - 1)  # "It takes 5 days": what "it" is
    elif opening is not None and opening != best and scores[opening] > 0:
        chosen.add(opening)  # the paragraph's topic sentence, when it speaks to the question too
    words = sum(len(found[i].text.split()) for i in chosen)
    # The row for the visitor's "42" or "100 cm" is the answer; rows without it are not.
    numbered = scores[best] > 0 and scorer.numbered(found[best])
    # So is the row or item for the place or thing the question names ("Germany: ..." for
    # "postage to munich (Germany)"); a row or item for another key follows it only when the
    # question names all of that key too (the sentences of the same item always may).
    keyed = scores[best] > 0 and scorer.keyed(found[best])
    for i in sorted(range(len(found)), key=lambda i: (-scores[i], i)):
        if len(chosen) >= MAX_UNITS:
            break
        if i in chosen or (numbered and not scorer.numbered(found[i])) or (
                keyed and found[i].key not in (frozenset(), found[best].key)
                and not scorer.keyed(found[i], fully=True)):
            continue
        if scores[best] <= 0:
            if found[i].block != found[best].block or i != max(chosen) + 1:
                continue  # the opening: the lines that follow it, in its paragraph
        elif scores[i] < NEARLY_AS_GOOD * scores[best]:
            break
        length = len(found[i].text.split())
        if words + length > MAX_WORDS:
            continue
        chosen.add(i)
        words += length
    for i in sorted(chosen):
        # "With an account you can:" says nothing without the first thing it introduces.
        if found[i].text.endswith(":") and i + 1 < len(found):
            chosen.add(i + 1)
    return " ".join(found[i].text for i in sorted(chosen))


def extract(question: str, passages: Sequence[Passage]) -> Extract:
    """The passage to quote (see the module docstring) and from it the answer: the product's
    words for a catalogue row, otherwise the one to three units that answer the question."""
    top = list(passages[:CONSIDERED])
    if not top:
        raise ValueError("no passages to extract from")
    found = [units(p) for p in top]
    scorer = _Scorer(question, [u for group in found for u in group])
    best = [max((scorer(u) for u in group), default=0.0) for group in found]
    # Lexical evidence decides between passages whose meaning is about as close to the
    # question; a clearly closer passage (dense cosine) wins. See the module docstring.
    known = [p.cosine for p in top if p.cosine is not None]
    floor = min(known, default=0.0)  # a lexical-only hit: below every dense candidate
    cosines = [floor if p.cosine is None else p.cosine for p in top]
    strongest = max(best) or 1.0
    ranked = max(range(len(top)),
                 key=lambda i: (best[i] / strongest + MEANING_WEIGHT * cosines[i], -i))
    passage = top[ranked]
    product = product_of(passage)
    if product is not None:
        return Extract(passage, product_answer(question, product), product)
    text = _choose(scorer, found[ranked]) or MARKUP.sub("", passage.text).strip()
    return Extract(passage, text)
