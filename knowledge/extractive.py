"""An answer without an LLM: the sentences of the best passage that speak to the question.

Used when no ANTHROPIC_API_KEY is configured, when the API times out or fails, and while the
circuit breaker is open. It never invents anything: it quotes the shop's own text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from knowledge.lexical import tokens
from knowledge.retrieval import Passage

MAX_WORDS = 70
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
MARKUP = re.compile(r"\*\*|__|`|^#+\s*", re.M)
CONSIDERED = 3  # passages; retrieval's order breaks ties


def _sentences(passage: Passage) -> list[str]:
    body = passage.text.split("\n", 1)[1] if "\n" in passage.text else passage.text
    body = MARKUP.sub("", body)
    return [s.strip(" -*|") for s in SENTENCE.split(body) if len(s.strip(" -*|")) > 2]


def best_passage(question: str, passages: Sequence[Passage]) -> Passage:
    """Of the top passages, the one holding the sentence that shares most words with the
    question (the fused ranking often puts a neighbouring section of the right page first)."""
    wanted = set(tokens(question))

    def overlap(passage: Passage) -> int:
        heading = set(tokens(passage.heading))  # "Classic Denim Jacket" belongs to each line
        return max((len(wanted & (heading | set(tokens(s)))) for s in _sentences(passage)),
                   default=0)

    top = list(passages[:CONSIDERED])
    return max(top, key=lambda p: (overlap(p), -top.index(p)))


def extract(question: str, passage: Passage) -> str:
    """Up to ~70 words from the passage, best-matching sentences first kept in document order."""
    sentences = _sentences(passage)
    if not sentences:
        return MARKUP.sub("", passage.text).strip()
    wanted = set(tokens(question))
    scored = sorted(range(len(sentences)),
                    key=lambda i: (-len(wanted & set(tokens(sentences[i]))), i))
    chosen: list[int] = []
    words = 0
    for i in scored:
        length = len(sentences[i].split())
        if chosen and words + length > MAX_WORDS:
            break
        chosen.append(i)
        words += length
        if not wanted & set(tokens(sentences[i])):
            break  # nothing relevant beyond the first pick
    text = " ".join(_sentence(sentences[i]) for i in sorted(chosen))
    return text


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", ":")) else f"{text}."
