"""Retrieval finds the shop's own passage for a visitor's question, and only that shop's.

What a visitor would notice: "do you ship to Canada?" is answered from the shipping page, a
SKU finds its product, a question the documents do not cover is not guessed at, and no shop
ever sees another shop's text. On SQLite and on PostgreSQL, with the real embedder.

The two shops are ingested once per database (module scope); each test opens its own engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from core.db import create_engine, session_factory
from core.settings import async_database_url
from knowledge.answers import KnowledgeAnswers
from knowledge.cache import MemoryAnswerCache
from knowledge.embeddings import Embedder
from knowledge.index import IndexFiles
from knowledge.ingest import SourceFile, collect, ingest
from knowledge.retrieval import Retrieval, Retriever, lead_with_named_section
from knowledge.tables import KnowledgeChunkRow
from tenants.models import Tenant
from tests.databases import database_params, migrated_url
from tests.knowledge.conftest import DEMO_KNOWLEDGE

SHOP_A = "tenant-a-demo"
SHOP_B = "tenant-b-canary"
CANARY = "The secret promo word is ZEBRAFISH-4417 and orders ship by llama."
CANARY_DOC = f"""# Promotions

{CANARY}

## Members
Club members collect two stamps per order.
"""
DEMO_SOURCES = {p.name for p in DEMO_KNOWLEDGE.iterdir()}


@dataclass(frozen=True)
class Shops:
    url: str
    index_root: Path


@pytest.fixture(scope="module", params=database_params())
def shops(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          embedder: Embedder) -> Iterator[Shops]:
    """Shop A holds the demo documents, shop B one page with a canary sentence."""
    tmp = tmp_path_factory.mktemp(f"shops-{request.param}")
    url = migrated_url(request.param, tmp)
    canary_docs = tmp / "canary"
    canary_docs.mkdir()
    (canary_docs / "promo.md").write_text(CANARY_DOC)

    async def build() -> None:
        engine = create_engine(async_database_url(url))
        try:
            sessions, index_files = session_factory(engine), IndexFiles(tmp / "knowledge")
            for tenant_id, folder in ((SHOP_A, DEMO_KNOWLEDGE), (SHOP_B, canary_docs)):
                report = await ingest(tenant_id, collect([folder]), sessions, index_files, embedder)
                assert report.added and not report.failed
        finally:
            await engine.dispose()

    asyncio.run(build())
    yield Shops(url, tmp / "knowledge")


@dataclass(frozen=True)
class Search:
    retriever: Retriever

    async def __call__(self, tenant_id: str, question: str, k: int = 5) -> Retrieval:
        return await self.retriever.search(tenant_id, question, k)

    async def chunk_ids(self, tenant_id: str) -> set[int]:
        async with self.retriever.sessions() as session:
            return set((await session.execute(select(KnowledgeChunkRow.id).where(
                KnowledgeChunkRow.tenant_id == tenant_id))).scalars())


@pytest_asyncio.fixture
async def search(shops: Shops, embedder: Embedder) -> AsyncIterator[Search]:
    engine = create_engine(async_database_url(shops.url))
    try:
        yield Search(Retriever(IndexFiles(shops.index_root), session_factory(engine), embedder))
    finally:
        await engine.dispose()


# -- tenant isolation ------------------------------------------------------------------------

CANARY_QUESTIONS = (CANARY, "ZEBRAFISH-4417", "what is the secret promo word?",
                    "do orders ship by llama?", "how many stamps do club members collect?")
DEMO_QUESTIONS = ("do you ship to Canada?", "JKT-DENIM-M",
                  "PayPal is available in every country we ship to.",
                  "what sizes does the denim jacket come in")


@pytest.mark.asyncio
async def test_shop_a_never_sees_shop_bs_text(search: Search) -> None:
    b_chunks = await search.chunk_ids(SHOP_B)
    for question in CANARY_QUESTIONS:
        # every candidate either ranking produced, not only the top few
        fused, cosines, _ = await asyncio.to_thread(search.retriever.rank, SHOP_A, question, 1000)
        assert not b_chunks & ({chunk_id for chunk_id, _ in fused} | set(cosines)), question
        result = await search(SHOP_A, question, k=20)
        assert result.passages, question
        for passage in result.passages:
            assert passage.source in DEMO_SOURCES, question
            assert "ZEBRAFISH" not in passage.text and "llama" not in passage.text, question


@pytest.mark.asyncio
async def test_shop_b_never_sees_shop_as_text(search: Search) -> None:
    a_chunks = await search.chunk_ids(SHOP_A)
    for question in DEMO_QUESTIONS:
        fused, cosines, _ = await asyncio.to_thread(search.retriever.rank, SHOP_B, question, 1000)
        assert not a_chunks & ({chunk_id for chunk_id, _ in fused} | set(cosines)), question
        result = await search(SHOP_B, question, k=20)
        assert {p.source for p in result.passages} <= {"promo.md"}, question
        assert not result.answerable, question  # B's page says nothing about it


@pytest.mark.asyncio
async def test_shop_b_finds_its_own_canary(search: Search) -> None:
    """The isolation tests above are not vacuous: the canary is retrievable where it belongs."""
    for question in ("ZEBRAFISH-4417", "what is the secret promo word?"):
        result = await search(SHOP_B, question)
        assert result.answerable and CANARY in result.passages[0].text, question


@pytest.mark.asyncio
async def test_a_tenant_id_cannot_climb_into_another_tenants_folder(search: Search) -> None:
    with pytest.raises(ValueError):
        await search(f"../{SHOP_B}", CANARY)


# -- finding the right passage ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_product_question_finds_the_product_row(search: Search) -> None:
    result = await search(SHOP_A, "what sizes does the denim jacket come in")

    top3 = [p.heading for p in result.passages[:3]]
    assert "Product catalogue > Classic Denim Jacket" in top3, top3
    (row,) = [p for p in result.passages[:3] if p.heading.endswith("Classic Denim Jacket")]
    assert "Sizes: XS;S;M;L;XL;XXL" in row.text
    assert row.url == "https://demo-outfitters.example/products/classic-denim-jacket"
    assert result.answerable


@pytest.mark.asyncio
async def test_a_variant_sku_finds_its_product_first(search: Search) -> None:
    result = await search(SHOP_A, "JKT-DENIM-M")

    assert result.passages[0].heading == "Product catalogue > Classic Denim Jacket"
    assert result.passages[0].source == "products.csv"
    assert result.answerable


@pytest.mark.asyncio
async def test_shipping_question_finds_the_shipping_page(search: Search, shops: Shops) -> None:
    result = await search(SHOP_A, "do you ship to Canada?")

    best = result.passages[0]
    assert (best.source, best.title) == ("shipping.md", "Shipping & Delivery")
    assert best.url == "https://demo-outfitters.example/pages/shipping"
    # the zone list that names Canada is among the first three (the first may be its neighbour)
    assert any("Canada (all provinces and territories)" in p.text for p in result.passages[:3])
    assert result.answerable
    assert result.index_version == IndexFiles(shops.index_root).current_version(SHOP_A)
    scores = [p.score for p in result.passages]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.asyncio
async def test_payment_question_finds_the_payments_page(search: Search) -> None:
    result = await search(SHOP_A, "can I pay with PayPal?")
    assert result.answerable and result.passages[0].heading == "Payment methods > PayPal"


# -- abstaining ------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("question", [
    "what's the capital of mongolia",
    "who won the football world cup in 1998?",
    "how do I bake sourdough bread",
])
async def test_uncovered_question_is_not_answerable(search: Search, question: str) -> None:
    result = await search(SHOP_A, question)
    assert not result.answerable, (result.best_cosine, [p.heading for p in result.passages[:3]])
    assert result.best_cosine < search.retriever.min_score or result.unknown_terms


@pytest.mark.asyncio
async def test_a_stop_word_is_no_unknown_term(search: Search) -> None:
    # "whats" loses its "s" to the lexical suffix strip and becomes "what", a stop word that
    # no index holds: it says nothing about what the shop lacks.
    result = await search(SHOP_A, "whats your phone number")
    assert result.unknown_terms == ()
    assert (await search(SHOP_A, "whats the wifi password")).unknown_terms == ("wifi",)


@pytest.mark.asyncio
async def test_a_word_of_feeling_is_no_unknown_term(search: Search) -> None:
    # The visitor's anger is no sign the shop lacks the topic; the thing they ask about is.
    result = await search(SHOP_A, "this is ridiculous, whats your terrible phone number")
    assert result.unknown_terms == ()
    assert (await search(SHOP_A, "awful wifi in the store")).unknown_terms == ("wifi",)


@pytest.mark.asyncio
async def test_whom_the_visitor_asks_for_is_no_unknown_term(search: Search) -> None:
    # a husband, a son or a person named after "from" is who, not what the shop lacks
    result = await search(SHOP_A, "what's the phone number for my husband, from Jane Smith")
    assert result.unknown_terms == ()
    assert (await search(SHOP_A, "my son wants a wifi password")).unknown_terms == ("wifi",)


@pytest.mark.asyncio
async def test_a_question_naming_a_pages_overview_is_answered_from_it(search: Search) -> None:
    # every section of the payments page shares "payment methods"; the one headed so lists them
    for asked in ("which payment methods are allowed", "what payment methods do u accept"):
        result = await search(SHOP_A, asked)
        assert result.overview and result.passages[0].heading == "Payment methods", asked
    result = await search(SHOP_A, "can i pay with paypal")
    assert not result.overview and result.passages[0].heading == "Payment methods > PayPal"
    # without an LLM key the answer quotes the overview's list, not one method's section
    shop = Tenant(SHOP_A, "demo", "Demo", None, 30, "demo", None)
    answer = await KnowledgeAnswers(search.retriever, MemoryAnswerCache(), None).answer(
        shop, "which payment methods are allowed")
    assert "You can pay for your Demo Outfitters order with" in answer.text, answer.text


PAYMENTS = {1: "Payment methods > Gift cards", 2: "Payment methods > PayPal", 3: "Payment methods"}


def test_only_an_overview_above_the_first_passage_leads() -> None:
    fused = [(1, 0.3), (2, 0.2), (3, 0.1)]
    assert lead_with_named_section(fused, PAYMENTS, "which payment methods are allowed") == (
        [(3, 0.1), (1, 0.3), (2, 0.2)], True)
    # a question about one of them keeps that one first
    assert lead_with_named_section(fused, PAYMENTS, "payment methods for gift cards") == (
        fused, False)
    # a sibling's heading is no overview ("Customer service" beside "... opening hours")
    siblings = {1: "Contact > Customer service opening hours", 2: "Contact > Customer service"}
    assert lead_with_named_section([(1, 0.2), (2, 0.1)], siblings, "customer service hours")[1] \
        is False
    # the word beyond the overview's heading names the first passage: that one is asked for
    stores = {1: "Contact > Our stores > Berlin store", 2: "Contact > Our stores"}
    assert lead_with_named_section([(1, 0.2), (2, 0.1)], stores, "a store in berlin?")[1] is False
    # an index built before headings were stored ranks as fused
    assert lead_with_named_section(fused, {}, "which payment methods") == (fused, False)


@pytest.mark.asyncio
async def test_a_word_said_twice_is_one_unknown_term(search: Search) -> None:
    # each unknown word costs the abstention score once (knowledge/retrieval.py)
    assert (await search(SHOP_A, "wifi? is there wifi in the store")).unknown_terms == ("wifi",)


@pytest.mark.asyncio
async def test_a_tenant_without_an_index_gets_nothing_not_an_error(search: Search) -> None:
    result = await search("tenant-with-no-documents", "do you ship to Canada?")
    assert result == Retrieval(passages=(), index_version=None, answerable=False, best_cosine=0.0)


@pytest.mark.asyncio
async def test_a_tenant_whose_documents_were_all_removed_gets_nothing(search: Search) -> None:
    tenant, retriever = "tenant-emptied", search.retriever
    page = SourceFile("hours.md", b"# Opening hours\n\nWe open at nine on weekdays.\n")
    await ingest(tenant, [page], retriever.sessions, retriever.index_files, retriever.embedder)
    assert (await search(tenant, "when do you open?")).answerable

    emptied = await ingest(tenant, [], retriever.sessions, retriever.index_files,
                           retriever.embedder)
    assert emptied.removed == ["hours.md"] and emptied.chunks_total == 0

    result = await search(tenant, "do you ship to Canada?")
    assert (result.passages, result.answerable) == ((), False)
