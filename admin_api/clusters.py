"""The questions the bot could not answer, grouped by meaning: topics with a count, not lines.

Texts are embedded with all-MiniLM-L6-v2 through ONNX Runtime (core/minilm.py's session,
built from the packaged weights: no PyTorch), in padded batches, one thread. Measured on a
busy 2-CPU host: 7 ms a question (12 ms one at a time), so CAP bounds the work: the latest
1,000 questions of the period, ~7 s the first time; vectors are kept per text (VECTORS), so a
later period or a refresh only embeds questions not seen before.

Grouping is deterministic and numpy only: exact repeats are folded first (visitors type the
same words); each distinct question's weight is how many times it was asked plus the
repeats of its neighbours (cosine ≥ THRESHOLD); taken in order of weight, a question not yet
grouped opens a cluster with every ungrouped neighbour; the member closest to the cluster's
centre stands for it (the plain question rather than one wrapped in a greeting or an order
number). O(n²) in the distinct questions: a 4 MB similarity matrix at CAP.

THRESHOLD 0.5 was chosen on real phrasings with this model: paraphrases of one question
score 0.48-0.84 ("Do you offer gift wrapping?" / "can I get it gift wrapped" 0.81, "do you
ship to canada" / "do you deliver internationally" 0.59, "how many reward points do I have"
/ "how do I redeem my points" 0.60), different questions of a shop 0.0-0.44 (the highest:
"can you wrap my order as a present" / "where is my order", which share "my order").
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from core.minilm import DIMENSION, SentenceEncoder

log = logging.getLogger(__name__)

CAP = 1_000  # the latest unanswered questions of a period that are grouped
VECTORS = 50_000  # texts whose vectors are kept (1.5 KB each)
THRESHOLD = 0.5
NEAR_CENTRE = 0.05
EXAMPLES = 3  # other phrasings shown with a cluster
BATCH = 32
MAX_TOKENS = 128  # visitors' questions are short; longer ones are cut for grouping


@dataclass(frozen=True)
class Cluster:
    question: str  # the representative phrasing
    count: int  # how many times a question of this cluster was asked
    examples: tuple[str, ...]  # a few other phrasings, most asked first
    # Every distinct phrasing with how many times it was asked, the representative first,
    # then the most asked (gap mining, admin_api/training/gaps.py, offers them all).
    members: tuple[tuple[str, int], ...] = ()


class BatchEncoder:
    """MiniLM sentence vectors for many short texts at once, the latest VECTORS remembered."""

    def __init__(self) -> None:
        # One thread: measured faster per text than two on a busy 2-CPU host (7.0 vs 8.9 ms),
        # and it leaves the other core to the API.
        self._sentences = SentenceEncoder(MAX_TOKENS, BATCH)
        self._lock = threading.Lock()  # the vector cache
        self._known: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        """Like encode, remembering the last VECTORS texts' vectors."""
        with self._lock:
            fresh = [t for t in dict.fromkeys(texts) if t not in self._known]
        if fresh:
            for text, vector in zip(fresh, self.encode(fresh), strict=True):
                with self._lock:
                    self._known[text] = vector
                    if len(self._known) > VECTORS:
                        self._known.popitem(last=False)
        with self._lock:
            for text in texts:
                self._known.move_to_end(text)
            return (np.stack([self._known[t] for t in texts]) if texts
                    else np.zeros((0, DIMENSION)))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._sentences.encode(texts)


@cache
def shared_encoder() -> BatchEncoder:
    """One encoder per process (the ONNX session holds ~90 MB; built in about a second);
    blocking, call in a thread."""
    return BatchEncoder()


def cluster(texts: Sequence[str], vectors: np.ndarray, counts: Sequence[int],
            threshold: float = THRESHOLD) -> list[Cluster]:
    """Group distinct `texts` (unit `vectors`, asked `counts` times); largest first."""
    if not texts:
        return []
    weights = np.asarray(counts, dtype=np.float64)
    near = (vectors @ vectors.T) >= threshold
    # Ties by text, so the same questions always group the same way.
    density = near.astype(np.float64) @ weights
    order = sorted(range(len(texts)), key=lambda i: (-density[i], -weights[i], texts[i]))
    grouped = np.zeros(len(texts), dtype=bool)
    clusters: list[Cluster] = []
    for leader in order:
        if grouped[leader]:
            continue
        members = [int(m) for m in np.flatnonzero(near[leader] & ~grouped)]
        grouped[members] = True
        # The phrasing that stands for the topic: among those closest to its centre (within
        # NEAR_CENTRE in cosine), the most asked, then the shortest: the plain question
        # rather than one wrapped in a greeting or an order number.
        centre = (vectors[members] * weights[members, None]).sum(axis=0)
        closeness = vectors[members] @ (centre / max(float(np.linalg.norm(centre)), 1e-12))
        best = float(closeness.max())
        shown = min((k for k in range(len(members)) if closeness[k] >= best - NEAR_CENTRE),
                    key=lambda k: (-weights[members[k]], len(texts[members[k]]),
                                   texts[members[k]]))
        chosen = members[shown]
        others = sorted((m for m in members if m != chosen),
                        key=lambda m: (-weights[m], len(texts[m]), texts[m]))
        clusters.append(Cluster(
            question=texts[chosen], count=int(weights[members].sum()),
            examples=tuple(texts[m] for m in others[:EXAMPLES]),
            members=tuple((texts[m], int(weights[m])) for m in (chosen, *others))))
    return sorted(clusters, key=lambda c: (-c.count, c.question))


def fold_key(text: str) -> str:
    """What makes two questions the same text: their words, ignoring case and spacing."""
    return " ".join(text.split()).casefold()


def _fold(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """Exact repeats (ignoring case and spacing) as one text with a count; the first
    spelling seen stands for them."""
    spelled: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for raw in texts:
        shown = " ".join(raw.split())
        if not shown:
            continue
        key = fold_key(shown)
        spelled.setdefault(key, shown)
        counts[key] += 1
    keys = sorted(counts)
    return [spelled[k] for k in keys], [counts[k] for k in keys]


def group_sync(texts: Sequence[str], threshold: float = THRESHOLD) -> list[Cluster]:
    distinct, counts = _fold(texts[:CAP])
    if not distinct:
        return []
    vectors = shared_encoder().encode_cached(distinct)
    return cluster(distinct, vectors, counts, threshold)


async def group_questions(texts: Sequence[str], threshold: float = THRESHOLD) -> list[Cluster]:
    """Cluster (at most CAP) questions off the event loop."""
    return await asyncio.to_thread(group_sync, texts, threshold)


def as_dict(found: Cluster) -> dict[str, Any]:
    return {"question": found.question, "count": found.count, "examples": list(found.examples)}
