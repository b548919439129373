"""Loaders turn a shop owner's files into documents with a title, a URL to cite and sections.

What a shop owner would notice: the bot quotes the page's own text under the right heading
and cites the page's URL, never the site's menu, footer, newsletter box or cookie banner; a
catalogue row is a product with its own link; a file we cannot read is refused by name.
"""

from __future__ import annotations

import logging

import pytest

from knowledge.loaders import Document, Section, UnsupportedDocument, load
from tests.knowledge.conftest import DEMO_KNOWLEDGE, pdf_bytes


def demo(name: str) -> Document:
    return load(name, (DEMO_KNOWLEDGE / name).read_bytes())


def text_of(document: Document) -> str:
    return "\n".join(section.text for section in document.sections)


def section_under(document: Document, *headings: str) -> str:
    (match,) = [s.text for s in document.sections if s.headings == headings]
    return match


# -- Markdown --------------------------------------------------------------------------------

MARKDOWN = """URL: https://shop.example/pages/shipping

# Shipping policy

We ship from Hamburg.

## Zones

### Canada
Parcels to Canada take 4 to 7 business days.

### Germany
Parcels within Germany arrive next day.

## Costs

| Zone | Price |
|---|---|
| Canada | 19.95 |
| Germany | 4.95 |
"""


def test_markdown_cites_the_url_line_and_titles_from_the_first_h1() -> None:
    document = load("shipping.md", MARKDOWN.encode())

    assert document.title == "Shipping policy"
    assert document.url == "https://shop.example/pages/shipping"
    assert "URL:" not in text_of(document)  # the URL line is metadata, not content
    assert document.sections[0] == Section((), "We ship from Hamburg.")


def test_markdown_keeps_the_heading_path_and_tables() -> None:
    document = load("shipping.md", MARKDOWN.encode())

    assert (section_under(document, "Zones", "Canada")
            == "Parcels to Canada take 4 to 7 business days.")
    assert section_under(document, "Zones", "Germany") == "Parcels within Germany arrive next day."
    costs = section_under(document, "Costs")
    assert costs.splitlines() == ["| Zone | Price |", "|---|---|", "| Canada | 19.95 |",
                                  "| Germany | 4.95 |"]


def test_markdown_without_h1_is_titled_from_its_file_name() -> None:
    document = load("gift-cards_terms.md", b"Gift cards are valid for 3 years.\n")
    assert document.title == "Gift cards terms"
    assert document.url is None


def test_demo_markdown_keeps_its_sections() -> None:
    document = demo("shipping.md")

    assert (document.title, document.url) == ("Shipping & Delivery",
                                              "https://demo-outfitters.example/pages/shipping")
    assert "Canada (all provinces and territories)" in section_under(document, "Shipping zones")
    table = section_under(document, "Shipping costs and free-shipping thresholds")
    assert "| US & Canada | €19.95 | €200 | €34.95 |" in table


# -- HTML ------------------------------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head>
  <title>Help | Example Shop</title>
  <link rel="canonical" href="https://shop.example/pages/help">
  <script>var tracking = "SCRIPT-TEXT";</script>
  <style>.x { color: red }</style>
</head><body>
  <header><a href="/">Example Shop</a><p>HEADER-TEXT</p></header>
  <nav><ul><li>NAV-ITEM Jackets</li><li>NAV-ITEM Sale</li></ul></nav>
  <main>
    <h1>Help centre</h1>
    <p>We answer within a day.</p>
    <h2>Delivery</h2>
    <h3>Canada</h3>
    <p>Canada takes <strong>4 to 7</strong> days.</p>
    <ul><li>UPS for standard parcels</li><li><p>DHL Express for express</p></li></ul>
    <table>
      <tr><th>Zone</th><th>Price</th></tr>
      <tr><td>Canada</td><td>19.95</td></tr>
    </table>
    <h2>Returns</h2>
    <p>Thirty days to return.</p>
  </main>
  <footer><p>FOOTER-TEXT Join our newsletter</p>
    <div id="cookie-banner">COOKIE-TEXT We use cookies.</div></footer>
  <script src="/theme.js"></script>
</body></html>
"""


def test_html_drops_page_furniture_and_cites_the_canonical_url() -> None:
    document = load("help.html", HTML.encode())
    text = text_of(document)

    assert document.title == "Help centre"
    assert document.url == "https://shop.example/pages/help"
    for furniture in ("SCRIPT-TEXT", "color: red", "HEADER-TEXT", "NAV-ITEM", "FOOTER-TEXT",
                      "COOKIE-TEXT"):
        assert furniture not in text, furniture


def test_html_keeps_the_heading_path_list_items_and_table_rows() -> None:
    document = load("help.html", HTML.encode())

    assert section_under(document) == "We answer within a day."
    canada = section_under(document, "Delivery", "Canada").split("\n\n")  # one block each
    assert canada[0].startswith("Canada takes") and "4 to 7" in canada[0]
    assert canada[1:3] == ["- UPS for standard parcels", "- DHL Express for express"]
    table = canada[3].splitlines()  # rows kept together as a Markdown table
    assert table[0] == "| Zone | Price |" and table[-1] == "| Canada | 19.95 |"
    assert section_under(document, "Returns") == "Thirty days to return."  # h2 resets the h3


def test_html_without_h1_is_titled_from_the_page_title() -> None:
    document = load("faq.html", b"<html><head><title>FAQ | Shop</title></head>"
                                b"<body><p>Gift cards never expire.</p></body></html>")
    assert document.title == "FAQ | Shop"
    assert document.url is None


def test_html_drops_a_cookie_banner_outside_the_footer() -> None:
    page = (b"<html><body><div id='cookie-banner' class='cookie-consent'><p>We use cookies. "
            b"Accept all?</p></div><h1>Returns</h1><p>Thirty days to return.</p></body></html>")
    assert "cookies" not in text_of(load("returns.html", page))


def test_demo_payments_page_has_its_content_and_not_its_footer() -> None:
    document = demo("payments.html")
    text = text_of(document)

    assert (document.title, document.url) == ("Payment methods",
                                              "https://demo-outfitters.example/pages/payments")
    assert "PayPal is available in every country we ship to." in section_under(document, "PayPal")
    items = [line for line in section_under(document, "Klarna").splitlines()
             if line.startswith("- ")]
    assert len(items) == 2 and "within 30 days" in items[0] and "interest-free" in items[1]
    for furniture in ("Join our newsletter", "Sign up", "We use cookies", "All rights reserved",
                      "Free standard shipping in Germany from €50 · Free returns",
                      "Jackets & Coats", "Log in", "dataLayer", "Privacy policy"):
        assert furniture not in text, furniture


# -- plain text ------------------------------------------------------------------------------

TEXT = """URL: https://shop.example/pages/store-guide
Store Guide
===========

Welcome to our store. We sell outdoor clothing.

Opening hours
-------------
Monday to Friday 9:00 to 18:00.

GIFT WRAPPING
Every order can be gift wrapped for 3 euros.
"""


def test_text_has_its_title_and_underlined_and_all_caps_headings() -> None:
    document = load("store-guide.txt", TEXT.encode())

    assert document.title == "Store Guide"
    assert document.url == "https://shop.example/pages/store-guide"
    assert [(s.headings, s.text) for s in document.sections] == [
        ((), "Welcome to our store. We sell outdoor clothing."),
        (("Opening hours",), "Monday to Friday 9:00 to 18:00."),
        (("Gift Wrapping",), "Every order can be gift wrapped for 3 euros."),
    ]


def test_demo_care_guide_sections_by_material() -> None:
    document = demo("care.txt")

    assert document.title == "Care Instructions"
    assert "Turn inside out and wash at 30 °C" in section_under(document, "Denim")
    assert ("Wool And Lambswool",) in [s.headings for s in document.sections]


# -- CSV -------------------------------------------------------------------------------------


def test_faq_csv_is_one_section_per_question() -> None:
    raw = ('question,answer\n'
           'Do you sell gift cards?,"Yes, from €25 to €300."\n'
           'Can I pay with PayPal?,Yes.\n'
           ',an answer without a question is skipped\n').encode()
    document = load("faq.csv", raw)

    assert document.title == "Frequently asked questions"
    assert [(s.headings, s.text) for s in document.sections] == [
        (("Do you sell gift cards?",), "Yes, from €25 to €300."),
        (("Can I pay with PayPal?",), "Yes."),
    ]


def test_catalogue_csv_is_one_product_per_row_with_its_own_url() -> None:
    raw = (b"sku,name,price_eur,sizes,url\n"
           b"JKT-1,Denim Jacket,89.00,S;M;L,https://shop.example/products/denim-jacket\n"
           b"TEE-1,Merino Tee,49.00,,\n")
    document = load("products.csv", raw)

    jacket, tee = document.sections
    assert document.title == "Product catalogue"
    assert jacket.headings == ("Denim Jacket",)
    assert jacket.url == "https://shop.example/products/denim-jacket"
    assert jacket.text.splitlines() == ["Sku: JKT-1", "Price (EUR): 89.00", "Sizes: S;M;L"]
    assert (tee.headings, tee.url, tee.text) == (("Merino Tee",), None,
                                                 "Sku: TEE-1\nPrice (EUR): 49.00")


def test_demo_catalogue_has_every_product() -> None:
    document = demo("products.csv")
    rows = (DEMO_KNOWLEDGE / "products.csv").read_text().count("\n") - 1

    assert len(document.sections) == rows >= 50
    (jacket,) = [s for s in document.sections if s.headings == ("Classic Denim Jacket",)]
    assert jacket.url == "https://demo-outfitters.example/products/classic-denim-jacket"
    assert "Sizes: XS;S;M;L;XL;XXL" in jacket.text.splitlines()
    assert "JKT-DENIM-M" in jacket.text


# -- PDF -------------------------------------------------------------------------------------


def test_pdf_text_is_extracted_per_page(caplog: pytest.LogCaptureFixture) -> None:
    lines = ["Gift Card Terms", "Gift cards are valid for three years.",
             "They cannot be exchanged for cash."]
    with caplog.at_level(logging.WARNING, logger="pypdf"):
        document = load("terms.pdf", pdf_bytes(lines))

    assert caplog.records == []  # the hand-made PDF is well formed: pypdf had nothing to repair
    assert document.title == "Gift Card Terms"  # no /Title: the first line
    assert document.url is None
    ((headings, text),) = [(s.headings, s.text) for s in document.sections]
    assert headings == ("Page 1",)
    assert text.splitlines() == lines


def test_pdf_title_comes_from_its_metadata() -> None:
    document = load("terms.pdf", pdf_bytes(["Valid for three years."], title="Gift card terms"))
    assert document.title == "Gift card terms"


def test_pdf_without_text_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match="no extractable text"):
        load("scan.pdf", pdf_bytes([]))


@pytest.mark.parametrize("data", [b"", b"%PDF-1.4 this is not really a pdf"],
                         ids=["empty", "garbage"])
def test_broken_pdf_is_refused_as_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedDocument):
        load("broken.pdf", data)


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "data"), [
    ("catalogue.xlsx", b"PK\x03\x04"),
    ("notes.docx", b"hello"),
    ("README", b"hello"),
])
def test_unsupported_suffix_is_refused_by_name(name: str, data: bytes) -> None:
    with pytest.raises(UnsupportedDocument, match=name.replace(".", r"\.")):
        load(name, data)


@pytest.mark.parametrize(("name", "data"), [
    ("empty.md", b""),
    ("blank.txt", b"  \n\n\t\n"),
    ("header-only.csv", b"question,answer\n"),
    ("empty.csv", b""),
    ("furniture.html", b"<html><body><nav><p>Menu</p></nav><script>x()</script></body></html>"),
])
def test_file_without_text_is_refused(name: str, data: bytes) -> None:
    with pytest.raises(UnsupportedDocument):
        load(name, data)


def test_every_demo_document_loads() -> None:
    for path in sorted(DEMO_KNOWLEDGE.iterdir()):
        document = load(path.name, path.read_bytes())
        assert document.title and document.sections, path.name
