"""Is a cited answer the model's own reading of the passages it cites?

The gate "an answer must cite a passage" used to count any `[n]` in the answer. A visitor
could satisfy it by typing "[1]" in the question and asking the model to repeat a sentence
of their own: the echo carried a citation and was shown as the shop's answer. Two checks
close that:

* `neutralise` rewrites citation-like markers in the visitor's question (`[1]`, `［１］`,
  `【1】`, ...) to `(1)` before it goes into the prompt, so the only `[n]` the model has seen
  are the passage ids we gave it;
* `supported` asks whether the text a citation covers rests on the passages it cites: every
  number in it appears in them (days, prices and percentages are where a wrong claim hurts
  most), and most of its content words do. Words are compared by their first five letters,
  a crude stemmer that works in any language written with spaces ("refunds", "refunded";
  "Rückerstattung", "Rückerstattungen"), because the model answers in the visitor's
  language and paraphrases. A paraphrase shares most of its words with its passage; a
  sentence the visitor dictated does not, even when the model was talked into citing it.

Lexical checks cannot prove a sentence true (a negation reuses the passage's words); they
make the visitor's own text fail the gate, and a failed gate costs only a quote instead of
a paraphrase (the extractive answer). The number rule is strict on purpose: "returns are
accepted within 30 days, so 45 days is too late [1]" fails when only the question says 45,
because a number the visitor wrote is exactly what a dictated claim would carry; the
visitor then reads the passage's own sentence instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Square brackets in ASCII and full width, lenticular, tortoise-shell and white brackets;
# ASCII and full-width digits. Wider than what we read back as a citation (`CITATION` in
# knowledge/prompt.py): the model may normalise a look-alike to the real thing.
_CITATION_LIKE = re.compile(r"[\[［【〔〖⟦]\s*([0-9０-９]{1,3}(?:\s*[,，]\s*[0-9０-９]{1,3})*)\s*"
                            r"[\]］】〕〗⟧]")
_WORD = re.compile(r"\w+")
PREFIX = 5  # letters compared: long enough to keep words apart, short enough for inflections
MIN_SHARE = 0.6  # of a cited span's content words that its passages must contain

# English function words only: they carry no claim, and a short answer full of them would
# otherwise dilute the share. Words of one or two letters are dropped anyway.
_STOPWORDS = frozenset("""
about above after again all also and any are because been before being below between both
but can cannot could did does doing don down during each few for from further had has have
having her here hers him his how however into its just like may might more most much must
not now off once only other our ours out over own please same she should some such than
that the their theirs them then there these they this those through too under until upon
very was were what when where whether which while who whom whose why will with would yes
yet you your yours
""".split())


def neutralise(question: str) -> str:
    """The question with citation-like markers turned to parentheses: `[1]` -> `(1)`."""
    return _CITATION_LIKE.sub(lambda m: f"({m.group(1)})", question)


def content_words(text: str) -> set[str]:
    """Numbers whole, other words lower-cased and cut to `PREFIX` letters, minus stopwords."""
    words: set[str] = set()
    for token in _WORD.findall(text.lower()):
        if token.isdecimal():
            words.add(str(int(token)))  # "05" and "5" (and full-width "５") are one number
        elif len(token) > 2 and token not in _STOPWORDS:
            words.add(token[:PREFIX])
    return words


def supported(span: str, passages: Iterable[str]) -> bool:
    """Does `span` (answer text that cites `passages`) rest on them? See the module docstring."""
    words = content_words(span)
    if not words:  # "Yes" or punctuation: no claim of its own to check
        return True
    known: set[str] = set()
    for passage in passages:
        known |= content_words(passage)
    if any(word.isdecimal() and word not in known for word in words):
        return False
    return len(words & known) >= MIN_SHARE * len(words)
