"""A catalogue row as a visitor reads it: the product's name, price, sizes and colours in words,
its stock, link and picture; never the raw "Sku: …; Variant skus: …" row.

The rows go through the real loader and chunker, as ingestion would cut them.
"""

from __future__ import annotations

from knowledge.chunking import chunk_document
from knowledge.loaders import load
from knowledge.products import Product, answer, product_of
from knowledge.retrieval import Passage
from tests.knowledge.conftest import DEMO_KNOWLEDGE

CATALOGUE = (
    "sku,name,price_usd,sizes,colors,stock,image_url,url,description\n"
    "TEE-1,Merino Tee,49.00,S;M;L,Black;Sand,in_stock,https://cdn.shop.example/tee.jpg,"
    "https://shop.example/p/tee,A light merino tee. Dries overnight after a hand wash.\n"
    "BOOT-1,Trail Boots,180.00,40;41;42;43;44;45;46;47,Brown,0,,,Waterproof leather boots.\n"
    "BTL-1,Steel Bottle,29,One size,Black,3,javascript:alert(1),,Keeps drinks cold for 24 h.\n"
    "JNS-1,Slim Jeans,99.00,W28;W30;W32 / L30;L32,Indigo,preorder,,,\n"
)


def rows(raw: str, source: str = "products.csv") -> dict[str, Passage]:
    document = load(source, raw.encode())
    return {chunk.heading.split(" > ")[-1]: Passage(
        n, document.title, chunk.heading, chunk.text, source, chunk.url, 1.0 / (n + 1), 0.5)
        for n, chunk in enumerate(chunk_document(document))}


def product(name: str, raw: str = CATALOGUE) -> Product:
    found = product_of(rows(raw)[name])
    assert found is not None
    return found


def test_the_demo_denim_jacket_is_answered_in_words_with_a_card() -> None:
    raw = (DEMO_KNOWLEDGE / "products.csv").read_text()
    jacket = product("Classic Denim Jacket", raw)

    text = answer("what sizes does the denim jacket come in?", jacket)

    assert text == ("The Classic Denim Jacket comes in sizes XS, S, M, L, XL and XXL. "
                    "It costs €89.00 and comes in Indigo or Washed Black.")
    assert jacket.card() == {
        "name": "Classic Denim Jacket",
        "price": "€89.00",
        "url": "https://demo-outfitters.example/products/classic-denim-jacket",
        "image": "https://demo-outfitters.example/images/products/classic-denim-jacket.jpg",
        "sku": "JKT-DENIM",
        "facts": ["Sizes XS, S, M, L, XL and XXL", "Colours: Indigo and Washed Black"],
    }


def test_the_answer_leads_with_what_was_asked() -> None:
    tee = product("Merino Tee")

    assert answer("how much is the merino tee?", tee).startswith("The Merino Tee costs $49.00.")
    assert answer("which colours does the merino tee come in", tee).startswith(
        "The Merino Tee comes in Black or Sand.")
    assert answer("is the merino tee in stock?", tee).startswith("The Merino Tee is in stock.")
    # The rest follows in one sentence: nothing of the row is lost, nothing raw shows.
    text = answer("how much is the merino tee?", tee)
    assert "It comes in sizes S, M and L, in Black or Sand and is in stock." in text
    assert "TEE-1" not in text and ";" not in text and "Image" not in text


def test_a_question_about_something_else_gets_the_description_line_that_answers_it() -> None:
    tee = product("Merino Tee")

    assert answer("how fast does the merino tee dry?", tee).endswith(
        "Dries overnight after a hand wash.")
    # A visitor looking for a kind of product gets the description's first line.
    assert answer("do you sell tees?", tee).endswith("A light merino tee.")


def test_plural_names_many_sizes_and_stock_counts_read_naturally() -> None:
    boots = product("Trail Boots")

    text = answer("how much are the trail boots", boots)

    assert text.startswith("The Trail Boots cost $180.00. They come in sizes 40 to 47, in Brown")
    assert "out of stock at the moment" in text
    assert boots.facts() == ["Sizes 40 to 47", "Colours: Brown", "Out of stock at the moment"]
    assert boots.url is None and boots.image is None


def test_one_size_a_size_grid_and_pre_orders() -> None:
    bottle, jeans = product("Steel Bottle"), product("Slim Jeans")

    assert "one size" not in answer("how much is the steel bottle", bottle)
    assert answer("what size is the steel bottle", bottle).startswith(
        "The Steel Bottle is one size.")
    assert "has 3 in stock" in answer("how much is the steel bottle", bottle)
    assert bottle.image is None  # only http(s) links become pictures
    assert bottle.price == "$29"
    assert answer("what sizes do the slim jeans come in", jeans).startswith(
        "The Slim Jeans come in sizes W28, W30 and W32, each in L30 and L32.")
    assert "Available to pre-order" in jeans.facts()


def test_a_variant_or_sku_in_the_question_is_named_in_the_answer() -> None:
    raw = (DEMO_KNOWLEDGE / "products.csv").read_text()
    jacket = product("Classic Denim Jacket", raw)

    assert answer("is JKT-DENIM-M the jean jacket in medium?", jacket).startswith(
        "JKT-DENIM-M is size M of the Classic Denim Jacket.")
    assert answer("what colours does JKT-DENIM come in", jacket).startswith(
        "The Classic Denim Jacket (JKT-DENIM) comes in Indigo or Washed Black.")


def test_only_catalogue_rows_are_products() -> None:
    faq = rows("question,answer\nDo you sell gift cards?,Yes.\n", "faq.csv")
    page = Passage(1, "Shipping", "Shipping > Canada", "Shipping > Canada\nWe ship to Canada.",
                   "shipping.md", None, 1.0, 0.5)

    assert product_of(faq["Do you sell gift cards?"]) is None
    assert product_of(page) is None


def test_a_product_survives_the_answer_cache() -> None:
    tee = product("Merino Tee")

    assert Product.from_dict(tee.to_dict()) == tee
