"""Words as the lexical index sees them (knowledge/lexical.py): a visitor's form of a word
meets the pages' form, and SKUs stay whole."""

from __future__ import annotations

import pytest

from knowledge.lexical import tokens


@pytest.mark.parametrize(("asked", "written"), [
    ("jackets", "jacket"),
    ("shipping", "shipped"),
    ("exchanging", "exchange"),  # a silent final e goes, as the ending does
    ("purchased", "purchases"),
    ("beanies", "beanie"),  # "-ie" reads as "-y", as "-ies" does
    ("hoodies", "hoodie"),
])
def test_forms_of_one_word_meet(asked: str, written: str) -> None:
    assert tokens(asked) == tokens(written)


@pytest.mark.parametrize("word", ["care", "size", "free", "the"])
def test_short_words_keep_their_e(word: str) -> None:
    assert tokens(word) in ([word], [])  # "the" is a stop word


def test_a_sku_stays_whole_and_yields_its_parts() -> None:
    assert tokens("JKT-DENIM-M") == ["jkt-denim-m", "jkt", "denim", "m"]
