"""A catalogue row read back as a product: what the visitor sees instead of the raw row.

`knowledge.loaders.load_csv` writes each catalogue row as one section of "Column: value" lines
under the product's name (its URL column becomes the passage URL). This module reads such a
passage back into a `Product`, words a short answer to the visitor's question from it without
an LLM ("The Classic Denim Jacket comes in sizes XS, S, M, L, XL and XXL. It costs €89.00 …"),
and gives channels a card to render (`Product.card`: name, price, facts in words, link, image).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from knowledge.lexical import tokens
from knowledge.loaders import CATALOGUE_TITLE
from knowledge.retrieval import Passage

FIELD = re.compile(r"^([^:\n]{1,60}):\s*(.*)$")
LIST_SEPARATOR = re.compile(r"\s*[;|]\s*")  # not "/" or ",": "Black/White", "S (EU 36, 37)"
SIZE_GRID = re.compile(r"\s+/\s+")  # "W28;W30 / L30;L32": waist by length
CURRENCY_LABEL = re.compile(r"\(([A-Za-z]{3})\)")  # "Price (EUR)", as loaders._label writes it
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
AMOUNT = re.compile(r"^\d+(?:[.,]\d+)?$")
SKU_LIKE = re.compile(r"[A-Za-z0-9]+(?:[-_./][A-Za-z0-9]+)+")
MAX_LISTED = 6  # more sizes than this read better as a range: "sizes 36 to 47"

# Column labels (lower case, currency dropped) by what they mean; other columns are details.
ROLES: dict[str, frozenset[str]] = {
    "price": frozenset({"price", "sale price", "unit price", "cost"}),
    "currency": frozenset({"currency"}),
    "sizes": frozenset({"sizes", "size", "available sizes"}),
    "colours": frozenset({"colours", "colors", "colour", "color", "colourways"}),
    "variants": frozenset({"variant skus", "variants", "variant"}),
    "availability": frozenset({"availability", "stock", "in stock", "stock status",
                               "inventory", "available", "stock level"}),
    "image": frozenset({"image", "image url", "image link", "picture", "photo", "thumbnail"}),
    "sku": frozenset({"sku", "product id", "article number"}),
}
DESCRIPTION = frozenset({"description", "summary", "details", "body"})
IN_STOCK = frozenset({"in stock", "instock", "available", "yes", "true", "y"})
OUT_OF_STOCK = frozenset({"out of stock", "outofstock", "sold out", "no", "false", "n", "0",
                          "unavailable"})
PREORDER = frozenset({"preorder", "pre-order", "pre order", "backorder", "on backorder"})

# What a question asks about, by its words (knowledge.lexical tokens), in the order a tie is
# broken; the answer leads with it.
ASKS: dict[str, frozenset[str]] = {
    "sizes": frozenset("size xs xl xxl small medium large big length waist".split()),
    "colours": frozenset("colour color colourway shade".split()),
    "price": frozenset("price cost much expensive cheap euro eur dollar pound".split()),
    "availability": frozenset("stock available availability sold restock".split()),
}
FACT_WORDS = frozenset().union(*ASKS.values())
# Words of visitors' questions that say nothing about the answer ("what sizes does it come
# in", "i need to know"); knowledge.lexical keeps them, as they can matter to retrieval.
FILLER = frozenset("""come need want know like tell really still ok okay lol guy stuff thing
    way also should shall may might must able let anyone someone something""".split())


@dataclass(frozen=True)
class Product:
    name: str
    url: str | None = None
    image: str | None = None
    price: str | None = None  # as shown to visitors: "€89.00"
    sizes: tuple[tuple[str, ...], ...] = ()  # one group, or a grid: (waists, lengths)
    colours: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    availability: str | None = None  # as the catalogue says it: "in stock", "3"
    sku: str | None = None
    details: tuple[tuple[str, str], ...] = ()  # the other columns: Material, Description, ...

    def facts(self) -> list[str]:
        """Sizes, colours and availability in words, a short line each (cards show them)."""
        facts = []
        if self.sizes:
            one = _one_size(self.sizes)
            facts.append(_capital(one) if one else f"Sizes {_sizes_words(self.sizes)}")
        if self.colours:
            facts.append(f"Colours: {_words(self.colours, 'and')}")
        elif self.variants and not self.sizes:
            facts.append(f"Variants: {_words(self.variants, 'and')}")
        stock = _stock(self.availability)
        if stock:
            facts.append(_capital(stock))
        return facts

    def card(self) -> dict[str, Any]:
        """What a channel renders: a card with image, title, price, facts and a link button
        in the widget and in email; the link alone on text-only channels."""
        card: dict[str, Any] = {"name": self.name}
        for key in ("price", "url", "image", "sku"):
            if getattr(self, key):
                card[key] = getattr(self, key)
        card["facts"] = self.facts()
        return card

    def to_dict(self) -> dict[str, Any]:
        """Everything, for the answer cache (`from_dict` reads it back)."""
        return {"name": self.name, "url": self.url, "image": self.image, "price": self.price,
                "sizes": [list(g) for g in self.sizes], "colours": list(self.colours),
                "variants": list(self.variants), "availability": self.availability,
                "sku": self.sku, "details": [list(d) for d in self.details]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Product:
        return cls(name=data["name"], url=data.get("url"), image=data.get("image"),
                   price=data.get("price"),
                   sizes=tuple(tuple(g) for g in data.get("sizes") or ()),
                   colours=tuple(data.get("colours") or ()),
                   variants=tuple(data.get("variants") or ()),
                   availability=data.get("availability"), sku=data.get("sku"),
                   details=tuple((str(k), str(v)) for k, v in data.get("details") or ()))


# --- reading a catalogue passage -------------------------------------------------------------


def _role(label: str) -> str | None:
    plain = " ".join(CURRENCY_LABEL.sub("", label).lower().replace("_", " ").split())
    return next((role for role, names in ROLES.items() if plain in names), None)


def _fields(body: str) -> list[tuple[str, str]] | None:
    """The row's (label, value) pairs; a line without a label continues the value above it
    (a CSV cell with line breaks). None when the text is not a row of fields."""
    fields: list[tuple[str, str]] = []
    for line in (raw.strip() for raw in body.splitlines()):
        if not line:
            continue
        match = FIELD.match(line)
        if match:
            fields.append((match.group(1).strip(), match.group(2).strip()))
        elif fields:
            label, value = fields[-1]
            fields[-1] = (label, f"{value} {line}".strip())
        else:
            return None
    return fields or None


def _price(label: str, value: str, currency: str | None) -> str:
    labelled = CURRENCY_LABEL.search(label)
    code = (currency or (labelled.group(1) if labelled else "")).upper()
    if not code or not AMOUNT.match(value):
        return value  # "€89", "89 EUR", "from 20": as the shop wrote it
    symbol = SYMBOLS.get(code)
    return f"{symbol}{value}" if symbol else f"{value} {code}"


def _http_url(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if re.fullmatch(r"https?://\S+", value, re.I) else None


def _items(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in LIST_SEPARATOR.split(value or "") if v)


def product_of(passage: Passage) -> Product | None:
    """The product a catalogue passage describes; None for any other passage."""
    if passage.title != CATALOGUE_TITLE:
        return None
    fields = _fields(passage.text.partition("\n")[2])
    if fields is None:
        return None
    found: dict[str, tuple[str, str]] = {}
    details: list[tuple[str, str]] = []
    for label, text in fields:
        role = _role(label)
        if role and role not in found and text:
            found[role] = (label, text)
        else:
            details.append((label, text))

    def value(role: str) -> str | None:
        return found[role][1] if role in found else None

    price = found.get("price")
    return Product(
        name=passage.heading.split(" > ")[-1].strip(),
        url=_http_url(passage.url),
        image=_http_url(value("image")),
        price=_price(price[0], price[1], value("currency")) if price else None,
        sizes=tuple(g for g in (_items(part) for part in SIZE_GRID.split(value("sizes") or ""))
                    if g),
        colours=_items(value("colours")),
        variants=_items(value("variants")),
        availability=value("availability"),
        sku=value("sku"),
        details=tuple(details),
    )


# --- in words --------------------------------------------------------------------------------


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _words(values: tuple[str, ...], last: str) -> str:
    if len(values) <= 1:
        return "".join(values)
    return f"{', '.join(values[:-1])} {last} {values[-1]}"


def _one_size(sizes: tuple[tuple[str, ...], ...]) -> str | None:
    """"one size" / "one size (180 × 30 cm)" when that is all there is."""
    if len(sizes) == 1 and len(sizes[0]) == 1 and sizes[0][0].lower().startswith("one size"):
        return "one size" + sizes[0][0][len("one size"):]
    return None


def _sizes_words(sizes: tuple[tuple[str, ...], ...]) -> str:
    """"XS, S, M, L, XL and XXL"; "36 to 47"; a grid: "W28 to W38, each in L30, L32 and L34"."""
    return ", each in ".join(f"{g[0]} to {g[-1]}" if len(g) > MAX_LISTED else _words(g, "and")
                             for g in sizes)


def _stock(availability: str | None) -> str | None:
    if not availability:
        return None
    plain = " ".join(availability.lower().replace("_", " ").split())
    if plain in IN_STOCK:
        return "in stock"
    if plain in OUT_OF_STOCK:
        return "out of stock at the moment"
    if plain in PREORDER:
        return "available to pre-order"
    if plain.isdigit():
        return f"{plain} in stock"
    return availability.strip()


def _plural(name: str) -> bool:
    """"Running Shoes", "Slim Fit Jeans" are they; "Everyday Socks 3-Pack", "Glass" are it."""
    last = name.split()[-1].lower() if name.split() else ""
    return last.isalpha() and last.endswith("s") and not last.endswith(("ss", "us", "is"))


def _phrases(product: Product, asked: set[str]) -> dict[str, str]:
    """What can be said of the product, by topic, as verb phrases ("costs €89.00"); "one
    size" only when the question is about sizes (it is noise on a bottle)."""
    plural = _plural(product.name)
    s = "" if plural else "s"
    phrases: dict[str, str] = {}
    one = _one_size(product.sizes)
    if product.sizes and (not one or asked & ASKS["sizes"]):
        phrases["sizes"] = (f"{'are' if plural else 'is'} {one}" if one
                            else f"come{s} in sizes {_sizes_words(product.sizes)}")
    if product.colours:
        phrases["colours"] = f"come{s} in {_words(product.colours, 'or')}"
    if product.price:
        phrases["price"] = f"cost{s} {product.price}"
    stock = _stock(product.availability)
    if stock:
        verb = ("have" if plural else "has") if stock[0].isdigit() else \
            ("are" if plural else "is")
        phrases["availability"] = f"{verb} {stock}"
    return phrases


def _joined(phrases: list[str]) -> str:
    """"costs €89", "comes in sizes S and M", "comes in Red or Blue" -> one predicate, with one
    "comes in" instead of two."""
    merged: list[str] = []
    for phrase in phrases:
        verb = phrase.split(" in ", 1)[0] + " in " if phrase.startswith("come") else ""
        if verb and merged and merged[-1].startswith(verb):
            merged[-1] = f"{merged[-1]}, in {phrase[len(verb):]}"
        else:
            merged.append(phrase)
    if len(merged) <= 1:
        return "".join(merged)
    return f"{', '.join(merged[:-1])} and {merged[-1]}"


def _descriptions(product: Product) -> list[str]:
    """The free-text columns (description, material, care, ...) as sentences."""
    out: list[str] = []
    for label, value in product.details:
        if not value or label.lower() in ("category", "name", "title", "type"):
            continue
        if label.lower() in DESCRIPTION:
            out.extend(_sentence(p) for p in re.split(r"(?<=[.!?])\s+", value) if p.strip())
        else:
            out.append(_sentence(f"{label}: {value}"))
    return out


def _detail(asked: set[str], product: Product) -> str | None:
    """The description sentence that shares most words with the question beyond the product's
    name and the facts already given; the description's first sentence when the question asks
    for no particular fact (a visitor looking for a kind of product)."""
    candidates = _descriptions(product)
    own = tokens(" ".join((product.name, product.sku or "", *product.variants)))
    wanted = asked - set(own) - FACT_WORDS - FILLER
    best = max(((len(wanted & set(tokens(s))), -i) for i, s in enumerate(candidates)),
               default=(0, 0))
    if best[0] > 0:
        return candidates[-best[1]]
    if candidates and not asked & FACT_WORDS:
        return next((s for s in candidates if not FIELD.match(s)), candidates[0])
    return None


def _variant(question: str, product: Product) -> str | None:
    """"JKT-DENIM-M is size M of the Classic Denim Jacket." when the question names a variant."""
    named = {t.upper() for t in SKU_LIKE.findall(question)}
    sizes = {s.upper(): s for group in product.sizes for s in group}
    for variant in product.variants:
        if variant.upper() not in named:
            continue
        stem = (product.sku or "").upper()
        suffix = variant.upper()[len(stem):].lstrip("-_./") if stem and \
            variant.upper().startswith(stem) else ""
        if suffix in sizes:
            return f"{variant} is size {sizes[suffix]} of the {product.name}."
        return f"{variant} is a variant of the {product.name}."
    return None


def answer(question: str, product: Product) -> str:
    """A few sentences about the product: what the question asks (sizes, colours, price or
    stock) first, then the other facts in one sentence, then the line of its description
    that speaks to the question, if any."""
    asked = set(tokens(question))
    name = product.name if product.name.lower().startswith("the ") else f"The {product.name}"
    if product.sku and product.sku.upper() in {t.upper() for t in SKU_LIKE.findall(question)}:
        name = f"{name} ({product.sku})"  # the visitor asked by article number
    phrases = _phrases(product, asked)
    focus = next((t for t, words in ASKS.items() if asked & words and t in phrases), None)
    if focus is None:
        focus = next((t for t in ("price", "sizes", "colours", "availability") if t in phrases),
                     None)
    sentences = [s for s in [_variant(question, product)] if s]
    sentences.append(f"{name} {phrases.pop(focus)}." if focus else f"{name}.")
    rest = [phrases[t] for t in ("price", "sizes", "colours", "availability") if t in phrases]
    if rest:
        sentences.append(f"{'They' if _plural(product.name) else 'It'} {_joined(rest)}.")
    detail = _detail(asked, product)
    if detail:
        sentences.append(detail)
    return " ".join(sentences)
