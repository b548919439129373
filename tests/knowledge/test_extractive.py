"""Answers without an LLM key, on the demo shop's own documents (real index, real embeddings).

What a visitor notices: a product question is answered with the product in words and a card
(price, sizes, link, picture) instead of the raw catalogue row; a question about a policy gets
the one to three sentences that answer it, not the whole section; a size question gets the one
table row that fits; the source stays attached. With Claude, answers keep their citations and
a cited product still brings its card.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from core.db import create_engine, session_factory
from core.settings import async_database_url
from knowledge.answers import Answer, KnowledgeAnswers, Source
from knowledge.cache import MemoryAnswerCache
from knowledge.claude import ClaudeAnswerer
from knowledge.embeddings import Embedder
from knowledge.index import IndexFiles
from knowledge.ingest import collect, ingest
from knowledge.retrieval import Retriever
from tenants.models import Tenant
from tests.databases import migrated_url
from tests.fakes.anthropic_server import AnthropicFake
from tests.knowledge.conftest import DEMO_KNOWLEDGE

KEY = "sk-ant-test-key"
SHOP = Tenant(id=str(uuid.uuid4()), slug="demo-kb", name="Demo Outfitters", greeting=None,
              return_window_days=30, order_backend="demo", credentials_encrypted=None,
              llm_model="claude-test-model", llm_max_tokens=300, llm_temperature=0.1)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
JACKET_URL = "https://demo-outfitters.example/products/classic-denim-jacket"


@pytest.fixture(scope="module")
def demo_kb(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[str]:
    """The demo documents ingested once for this module; yields the database URL."""
    tmp = tmp_path_factory.mktemp("extractive")
    url = migrated_url("sqlite", tmp)

    async def build() -> None:
        engine = create_engine(async_database_url(url))
        try:
            await ingest(SHOP.id, collect([DEMO_KNOWLEDGE]), session_factory(engine),
                         IndexFiles(tmp / "knowledge"), embedder)
        finally:
            await engine.dispose()

    asyncio.run(build())
    yield url


@pytest_asyncio.fixture
async def retriever(demo_kb: str, embedder: Embedder) -> AsyncIterator[Retriever]:
    engine = create_engine(async_database_url(demo_kb))
    root = Path(demo_kb.removeprefix("sqlite:///")).parent / "knowledge"
    try:
        yield Retriever(IndexFiles(root), session_factory(engine), embedder)
    finally:
        await engine.dispose()


async def ask(retriever: Retriever, question: str) -> Answer:
    return await KnowledgeAnswers(retriever, MemoryAnswerCache(), None).answer(SHOP, question)


def sentences(text: str) -> list[str]:
    return SENTENCE_END.split(text.strip())


@pytest.mark.asyncio
async def test_a_product_question_gets_the_product_in_words_and_a_card(
        retriever: Retriever) -> None:
    answer = await ask(retriever, "what sizes does the denim jacket come in?")

    assert answer.mode == "extractive"
    assert answer.text == ("The Classic Denim Jacket comes in sizes XS, S, M, L, XL and XXL. "
                           "It costs €89.00 and comes in Indigo or Washed Black.")
    assert "Sku" not in answer.text and "JKT-DENIM-XS" not in answer.text
    assert answer.sources == (Source("Classic Denim Jacket", JACKET_URL, "products.csv"),)
    (card,) = [p.card() for p in answer.products]
    assert card["name"] == "Classic Denim Jacket" and card["price"] == "€89.00"
    assert card["url"] == JACKET_URL
    assert card["image"].endswith("/images/products/classic-denim-jacket.jpg")
    assert "Sizes XS, S, M, L, XL and XXL" in card["facts"]


@pytest.mark.asyncio
async def test_a_cached_product_answer_keeps_its_card(retriever: Retriever) -> None:
    answers = KnowledgeAnswers(retriever, MemoryAnswerCache(), None)

    first = await answers.answer(SHOP, "how much is the leather biker jacket")
    again = await answers.answer(SHOP, "How much is the leather biker jacket?")

    assert again.cached and again.products == first.products
    assert first.text.startswith("The Rider Leather Jacket costs €399.00.")
    assert "biker jacket in soft lambskin" in first.text  # the description line that fits


@pytest.mark.asyncio
@pytest.mark.parametrize(("question", "answering"), [
    ("can i choose ups instead of dhl?", "You can't choose the carrier yourself."),
    ("tracking hasnt moved for over a week, is my package lost?", "open an investigation"),
    ("how do i know my glove size", "measure around your palm"),
    ("what belt length should i order", "choose a belt 10 cm longer than your waist"),
    ("if i delete my account do you still keep my invoices?", "kept for 10 years"),
    ("my new sweater is getting little bobbles on it", "Remove bobbles with a wool comb"),
    ("can i use fabric softener on merino", "Don't use fabric softener"),
])
async def test_a_policy_question_gets_the_sentences_that_answer_it(
        retriever: Retriever, question: str, answering: str) -> None:
    answer = await ask(retriever, question)

    assert answering in answer.text
    assert 1 <= len(sentences(answer.text)) <= 4, answer.text  # a ":" lead-in may bring one
    assert len(answer.text.split()) <= 75, answer.text
    assert not re.search(r"\*\*|\||^#", answer.text), answer.text  # no Markdown shows
    assert answer.sources and answer.sources[0].url  # where it comes from


@pytest.mark.asyncio
@pytest.mark.parametrize(("question", "opening"), [
    # returns.md opens "Not quite right? You can return most items ... within 30 days ..."
    ("whats your refund policy", "You can return most items"),
    # account.md: "Forgot your password? Click Log in, then Forgot password?, ..."
    ("cant log in", "Click Log in, then Forgot password?"),
])
async def test_a_question_the_page_asks_itself_is_not_the_answer(
        retriever: Retriever, question: str, opening: str) -> None:
    """A paragraph that opens with a rhetorical question states its topic in the sentence
    after it: that sentence leads the answer, the question alone never does."""
    answer = await ask(retriever, question)

    assert answer.text.startswith(opening), answer.text
    assert not any(s.endswith("?") for s in sentences(answer.text)), answer.text


@pytest.mark.asyncio
async def test_a_size_question_gets_the_table_row_in_words(retriever: Retriever) -> None:
    shoes = await ask(retriever, "what is eu 42 in us shoe size")
    chest = await ask(retriever, "chest is about 100cm, what tshirt size do i need")

    assert shoes.text == "EU 42: UK 8, US men 9, US women 10.5, Foot length (cm) 26.7."
    # 100 cm falls in size M's chest range (96–101), not in XL's waist range (96–101).
    assert chest.text.startswith("Size M: Chest (cm) 96–101")
    assert "Size XL" not in chest.text
    assert shoes.sources[0].document == chest.sources[0].document == "sizing.md"


@pytest.mark.asyncio
async def test_a_question_naming_one_row_or_item_gets_that_one(retriever: Retriever) -> None:
    """The row or labelled item for what the question names is the answer; the rows and items
    for other days or zones are not, however much else they share with the question."""
    thursday = await ask(retriever, "can i ring you after work on thursday, like 7pm")
    munich = await ask(retriever, "do i pay for the return label? i live in munich")
    new_york = await ask(retriever, "standard delivery time to new york?")

    assert thursday.text == "Thursday: Phone and live chat with a person 09:00–20:00."
    assert munich.text.startswith("Germany: returns are free.")
    assert "Faulty" not in munich.text and "European Union" not in munich.text
    # "(United States, US & Canada)" names the zone, not the United Kingdom.
    assert "US & Canada: standard 4–7 business days" in new_york.text
    assert "United Kingdom" not in new_york.text, new_york.text


@pytest.mark.asyncio
async def test_claude_answers_keep_their_citations_and_a_cited_product_its_card(
        retriever: Retriever) -> None:
    with AnthropicFake(api_key=KEY) as fake:
        fake.responder = lambda body: "The Classic Denim Jacket comes in XS to XXL. [1]"
        llm = ClaudeAnswerer(KEY, fake.base_url, timeout=5.0)
        try:
            answer = await KnowledgeAnswers(retriever, MemoryAnswerCache(), llm).answer(
                SHOP, "what sizes does the denim jacket come in?")
        finally:
            await llm.close()

    assert answer.mode == "llm"
    assert answer.text == "The Classic Denim Jacket comes in XS to XXL."
    assert answer.sources == (Source("Classic Denim Jacket", JACKET_URL, "products.csv"),)
    assert [p.name for p in answer.products] == ["Classic Denim Jacket"]
