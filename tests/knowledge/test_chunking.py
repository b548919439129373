"""Chunks are what the bot reads and quotes: small, headed, and never cut mid-row or mid-sentence.

What a visitor would notice: a quoted passage says what it is about ("Shipping > Canada"),
stays short enough for the model to read whole, and a price table quoted in part still has
its column names.
"""

from __future__ import annotations

import re

from knowledge.chunking import (
    LINK_LINE,
    MAX_WORDS,
    TABLE_RULE,
    WINDOW_BREAK,
    WINDOW_WORDS,
    Chunk,
    chunk_document,
    windows,
)
from knowledge.loaders import Document, Section, load
from tests.knowledge.conftest import DEMO_KNOWLEDGE


def body(chunk_text: str) -> str:
    return chunk_text.partition("\n")[2]


def demo_chunks() -> list[tuple[Document, list[Chunk]]]:
    out = []
    for path in sorted(DEMO_KNOWLEDGE.iterdir()):
        document = load(path.name, path.read_bytes())
        out.append((document, chunk_document(document)))
    return out


def long_table(rows: int) -> tuple[str, list[str]]:
    header = "| Size | Chest (cm) | Waist (cm) | Notes |\n|---|---|---|---|"
    lines = [f"| EU {30 + i} | {80 + i} | {70 + i} | fits true to size with room to layer |"
             for i in range(rows)]
    return header + "\n" + "\n".join(lines), lines


# -- chunks ----------------------------------------------------------------------------------


def test_demo_chunks_fit_the_model_and_start_with_their_heading_path() -> None:
    for document, chunks in demo_chunks():
        assert chunks, document.source
        assert [c.ordinal for c in chunks] == list(range(len(chunks)))
        headings = {" > ".join((document.title, *s.headings)) for s in document.sections}
        for chunk in chunks:
            first_line, _, passage = chunk.text.partition("\n")
            assert first_line == chunk.heading and chunk.heading in headings
            assert passage.strip(), chunk
            assert len(passage.split()) <= MAX_WORDS, (document.source, chunk.heading)


def test_heading_path_is_prefixed_to_each_chunk() -> None:
    document = load("shipping.md", b"URL: https://shop.example/shipping\n# Shipping policy\n\n"
                                   b"## Zones\n### Canada\nParcels to Canada take 4 to 7 days.\n")
    (chunk,) = chunk_document(document)

    assert chunk.heading == "Shipping policy > Zones > Canada"
    assert chunk.text == "Shipping policy > Zones > Canada\nParcels to Canada take 4 to 7 days."
    assert chunk.url == "https://shop.example/shipping"


def test_a_chunk_never_spans_two_sections() -> None:
    document = Document("faq.md", "FAQ", None, (
        Section(("Gift cards",), "Gift cards are valid for 3 years."),
        Section(("PayPal",), "We accept PayPal."),
    ))
    assert [c.text for c in chunk_document(document)] == [
        "FAQ > Gift cards\nGift cards are valid for 3 years.",
        "FAQ > PayPal\nWe accept PayPal.",
    ]


def test_catalogue_chunks_keep_each_products_own_url() -> None:
    document = load("products.csv", (DEMO_KNOWLEDGE / "products.csv").read_bytes())
    chunks = chunk_document(document)

    assert len(chunks) == len(document.sections)  # one product, one chunk
    (jacket,) = [c for c in chunks if c.heading == "Product catalogue > Classic Denim Jacket"]
    assert jacket.url == "https://demo-outfitters.example/products/classic-denim-jacket"


def test_long_prose_is_cut_between_sentences() -> None:
    sentences = [f"Sentence {i} explains how parcels to zone {i} are packed and sent."
                 for i in range(60)]
    document = Document("p.md", "Packing", None, (Section(("How we pack",), "\n".join(sentences)),))
    chunks = chunk_document(document)

    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.text.startswith("Packing > How we pack\n")
        assert len(body(chunk.text).split()) <= MAX_WORDS
        assert body(chunk.text).endswith(".")  # whole sentences only
    assert " ".join(body(c.text) for c in chunks).split() == " ".join(sentences).split()


def test_long_paragraphs_are_packed_up_to_the_budget() -> None:
    paragraphs = [f"Paragraph {i} says that returns are free within thirty days of delivery."
                  for i in range(40)]
    document = Document("r.md", "Returns", None, (Section((), "\n\n".join(paragraphs)),))
    chunks = chunk_document(document)

    assert 1 < len(chunks) < len(paragraphs)  # several paragraphs share a chunk
    assert all(len(body(c.text).split()) <= MAX_WORDS for c in chunks)
    assert [p for c in chunks for p in body(c.text).split("\n\n")] == paragraphs


def test_a_long_table_is_split_between_rows_repeating_its_header() -> None:
    table, rows = long_table(40)
    document = Document("sizing.md", "Size guide", None, (Section(("Trousers",), table),))
    chunks = chunk_document(document)

    assert len(chunks) > 1
    seen = []
    for chunk in chunks:
        lines = body(chunk.text).splitlines()
        assert lines[:2] == ["| Size | Chest (cm) | Waist (cm) | Notes |", "|---|---|---|---|"]
        assert len(" ".join(lines).split()) <= MAX_WORDS
        seen.extend(lines[2:])
    assert seen == rows  # every row once, whole, in order


def test_demo_size_tables_keep_their_header_in_every_chunk() -> None:
    document = load("sizing.md", (DEMO_KNOWLEDGE / "sizing.md").read_bytes())
    for chunk in chunk_document(document):
        lines = body(chunk.text).splitlines()
        rows = [line for line in lines if line.startswith("|")]
        if rows:
            header_at = lines.index(rows[0])
            assert TABLE_RULE.match(lines[header_at + 1]), chunk.text  # rows come after a header


def test_a_long_html_table_is_split_between_rows_repeating_its_header() -> None:
    cells = "".join(f"<tr><td>EU {30 + i}</td><td>{80 + i} cm</td>"
                    "<td>fits true to size with room</td></tr>" for i in range(40))
    page = (f"<html><body><main><h1>Size guide</h1><h2>Trousers</h2><table><tr><th>Size</th>"
            f"<th>Chest</th><th>Notes</th></tr>{cells}</table></main></body></html>")
    chunks = chunk_document(load("sizing.html", page.encode()))

    assert len(chunks) > 1
    for chunk in chunks:
        lines = body(chunk.text).splitlines()
        assert lines[:2] == ["| Size | Chest | Notes |", "|---|---|---|"]
        assert all(re.fullmatch(r"\| EU \d+ \| \d+ cm \| fits true to size with room \|", line)
                   for line in lines[2:])


# -- windows ---------------------------------------------------------------------------------


def test_windows_group_sentences_under_the_heading_line() -> None:
    text = ("Returns > Refunds\nRefunds take 5 business days. Your bank may need 3 more days. "
            "We refund the original payment method. Gift card payments go back to a new gift card. "
            "Shipping costs are refunded only when the whole order is returned.")
    groups = windows(text)

    assert len(groups) > 1
    for group in groups:
        heading, _, passage = group.partition("\n")
        assert heading == "Returns > Refunds"
        assert len(passage.split()) <= WINDOW_WORDS
    assert " ".join(body(g) for g in groups).split() == body(text).split()


def test_demo_windows_cover_their_chunk_in_small_groups() -> None:
    for _, chunks in demo_chunks():
        for chunk in chunks:
            groups = windows(chunk.text)
            for group in groups:
                heading, _, passage = group.partition("\n")
                assert heading == chunk.heading
                sentences = [s for s in WINDOW_BREAK.split(passage) if s.strip()]
                # a sentence longer than the budget stands alone; otherwise the group fits
                assert len(passage.split()) <= WINDOW_WORDS or len(sentences) == 1, group
            kept = [line for line in body(chunk.text).splitlines()
                    if not TABLE_RULE.match(line) and not LINK_LINE.match(line)]
            assert " ".join(body(g) for g in groups).split() == " ".join(kept).split()


def test_table_rule_lines_are_not_windows() -> None:
    groups = windows("Sizes\n| Size | Chest |\n|---|---|\n| S | 90 |\n| M | 96 |")
    assert groups == ["Sizes\n| Size | Chest | | S | 90 | | M | 96 |"]


def test_a_catalogue_rows_bare_links_are_not_windows() -> None:
    """An image URL says nothing the embedding model could match a question with."""
    groups = windows("Product catalogue > Denim Jacket\nSizes: S;M\n"
                     "Image url: https://shop.example/img/denim.jpg")
    assert groups == ["Product catalogue > Denim Jacket\nSizes: S;M"]


def test_a_chunk_with_only_a_heading_is_its_own_window() -> None:
    assert windows("FAQ > Gift cards") == ["FAQ > Gift cards"]
