"""One question in, one grounded answer out: cache → retrieve → abstain, Claude or extract.

Modes, visible in the logs and in each answer's metadata (stored with the bot's message):
  llm         Claude answered from the passages and cited them
  extractive  no API key configured: the sentences of the best passage that answer it, or
              the product its catalogue row describes, in words (knowledge/extractive.py)
  fallback    the API failed, timed out or its circuit is open: the same, extracted
  abstained   retrieval (or Claude) found nothing that answers it: say so, offer a person
An extractive answer while an API key is configured means the shop's monthly token budget is
spent (knowledge/budget.py).
Only answers that would come out the same next time are cached (not `fallback`, nor an
extractive answer forced by the budget: the month ends, or the budget is raised).

An answer drawn from catalogue rows (extracted, or cited by Claude) carries those products
(knowledge/products.py), so channels can show a card with image, price and link.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from knowledge.cache import AnswerCache, cache_key
from knowledge.claude import ClaudeAnswerer, LlmOverBudget, LlmUnavailable
from knowledge.extractive import extract
from knowledge.products import Product, product_of
from knowledge.retrieval import Passage, Retriever
from tenants.models import Tenant

log = logging.getLogger(__name__)

MAX_PRODUCTS = 3  # cards under one answer; Claude may cite more rows than a visitor can take in


@dataclass(frozen=True)
class Source:
    title: str
    url: str | None
    document: str  # the file it came from


@dataclass(frozen=True)
class Answer:
    text: str
    sources: tuple[Source, ...]
    mode: str  # llm | extractive | fallback | abstained
    index_version: str | None
    cached: bool = False
    products: tuple[Product, ...] = ()  # catalogue rows it was drawn from, for product cards

    @property
    def abstained(self) -> bool:
        return self.mode == "abstained"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        data["products"] = [p.to_dict() for p in self.products]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], cached: bool = False) -> Answer:
        sources = tuple(Source(**s) for s in data.get("sources", ()))
        products = tuple(Product.from_dict(p) for p in data.get("products") or ())
        return cls(data["text"], sources, data["mode"], data.get("index_version"), cached,
                   products)


def _source(passage: Passage) -> Source:
    # The innermost heading names what was used: "Classic Denim Jacket", not "Product
    # catalogue"; "Shipping zones" on the shipping page (whose URL comes with it).
    return Source(passage.heading.split(" > ")[-1], passage.url, passage.source)


def _unique(sources: list[Source]) -> tuple[Source, ...]:
    seen: dict[tuple[str, str | None], Source] = {}
    for source in sources:
        seen.setdefault((source.title, source.url), source)
    return tuple(seen.values())


class KnowledgeAnswers:
    def __init__(self, retriever: Retriever, cache: AnswerCache, llm: ClaudeAnswerer | None,
                 top_k: int = 5) -> None:
        self.retriever = retriever
        self.cache = cache
        self.llm = llm
        self.top_k = top_k
        self.modes: Counter[str] = Counter()  # per process, for logs and the bench

    async def answer(self, tenant: Tenant, question: str) -> Answer:
        started = time.perf_counter()
        version = self.retriever.index_files.current_version(tenant.id)
        key = cache_key(tenant.id, version, question) if version else None
        hit = await self.cache.get(key) if key else None
        if hit is not None:
            answer = Answer.from_dict(hit, cached=True)
        else:
            answer = await self._answer(tenant, question)
            lasting = answer.mode != "fallback" and not (
                self.llm is not None and answer.mode == "extractive")  # over budget
            if key and lasting and answer.index_version == version:
                await self.cache.set(key, answer.to_dict())
        self.modes[answer.mode] += 1
        log.info("knowledge answer", extra={
            "tenant_id": tenant.id, "mode": answer.mode, "cached": answer.cached,
            "sources": [s.document for s in answer.sources], "index_version": answer.index_version,
            "ms": round((time.perf_counter() - started) * 1000, 1)})
        return answer

    async def _answer(self, tenant: Tenant, question: str) -> Answer:
        started = time.perf_counter()
        retrieval = await self.retriever.search(tenant.id, question, self.top_k)
        log.debug("retrieved", extra={"tenant_id": tenant.id, "passages": len(retrieval.passages),
                                      "best_cosine": round(retrieval.best_cosine, 3),
                                      "ms": round((time.perf_counter() - started) * 1000, 1)})
        version = retrieval.index_version
        if not retrieval.answerable or not retrieval.passages:
            return Answer("", (), "abstained", version)
        passages = retrieval.passages
        if self.llm is not None:
            try:
                read = await self.llm.answer(tenant, question, passages)
            except LlmOverBudget:  # the no-key mode until the month ends
                return self._extractive(retrieval.asked or question, passages, "extractive",
                                        version)
            except LlmUnavailable:
                return self._extractive(retrieval.asked or question, passages, "fallback",
                                        version)
            if read.abstained:
                return Answer("", (), "abstained", version)
            cited = [passages[n - 1] for n in read.cited]
            products = tuple(p for p in map(product_of, cited) if p is not None)
            return Answer(read.text, _unique([_source(p) for p in cited]), "llm", version,
                          products=products[:MAX_PRODUCTS])
        # The passage to quote and its sentences are read with the question as it was searched
        # (fillers dropped, typos corrected, the pages' words added after the shopper's); an
        # overview the question names is the one to quote (knowledge/retrieval.py).
        return self._extractive(retrieval.asked or question,
                                passages[:1] if retrieval.overview else passages, "extractive",
                                version)

    @staticmethod
    def _extractive(question: str, passages: tuple[Passage, ...], mode: str,
                    version: str | None) -> Answer:
        found = extract(question, passages)
        products = (found.product,) if found.product is not None else ()
        return Answer(found.text, (_source(found.passage),), mode, version, products=products)
