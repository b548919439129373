"""Words as the lexical index sees them, so product names, SKUs and exact terms match.

"JKT-DENIM-M" stays one token (and also yields "jkt", "denim", "m"), so a visitor typing the
SKU finds the row, and one typing "denim jacket" does too. A light plural/verb-ending strip
and -ing/-ed strip makes "jackets" meet "jacket" and "shipping" meet "ship" without a full
stemmer's surprises on brand and product names; a silent final e goes too, so "exchange"
meets "exchanging" and "purchase" "purchased", and "-ie" reads as "-y", so "beanie" meets
"beanies" (recall@1 on bench/data/knowledge_questions.yml 0.795 -> 0.800 and 0.729 -> 0.736,
MRR 0.869 -> 0.872 and 0.824 -> 0.829, recall@5 unchanged). Changing these rules changes the index:
bump knowledge.ingest.PIPELINE_VERSION with them.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"[a-z0-9]+(?:[-_./][a-z0-9]+)*")
STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does doing for from had has have how i
    if in into is it its me my of on or our so than that the their them then there these they
    this those to too u up us was we were what when where which who why will with would you your
    yours hi hello hey please pls thanks thank just any some get got im i'm ur""".split()
)


def _drop_e(word: str) -> str:
    """"exchange" -> "exchang", as "exchanging" and "exchanged" lose their ending: the silent e
    after a consonant goes (from five letters, so "care" and "size" stay themselves)."""
    if len(word) >= 5 and word.endswith("e") and word[-2] not in "aeiouy":
        return word[:-1]
    return word


def _normalise(word: str) -> str:
    if word.isdigit() or len(word) <= 3:
        return word
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("ie"):  # "beanie" meets "beanies", "hoodie" "hoodies"
        return word[:-2] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return _drop_e(word[:-1])
    for ending in ("ing", "ed"):  # shipping/shipped -> ship, washing -> wash
        stem = word[: -len(ending)]
        if word.endswith(ending) and len(stem) >= 3 and any(v in stem for v in "aeiouy"):
            if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                stem = stem[:-1]
            return stem
    return _drop_e(word)


def tokens(text: str) -> list[str]:
    out: list[str] = []
    for token in TOKEN.findall(text.lower()):
        parts = re.split(r"[-_./]", token)
        if len(parts) > 1:
            out.append(token)  # the whole SKU / compound, exactly
        out.extend(_normalise(p) for p in parts if p not in STOPWORDS)
    return out
