"""Where the visitor is, read as the shop's pages say it (knowledge/places.py, groups.py and the
rewriting in query.py): a city or "usa" means a country, the country is in one of the shop's
own shipping zones, and the answer quotes that zone's row of the price table."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from knowledge.answers import KnowledgeAnswers
from knowledge.cache import MemoryAnswerCache
from knowledge.groups import groups
from knowledge.places import places
from knowledge.query import Rewriter
from tenants.models import Tenant
from tests.knowledge.conftest import Store

SHIPPING = """# Shipping
## Shipping zones
- **Zone 1 – Germany**: mainland Germany and the German islands (Sylt, Rügen).
- **Zone 2 – European Union**: Austria, Belgium, France, Poland, Spain and Sweden.
- **Zone 3 – US & Canada**: the United States (all 50 states) and Canada.
- **Zone 4 – Rest of world**: Switzerland, Norway, Australia and Japan.

## Shipping costs
| Zone | Standard shipping | Express shipping |
|---|---|---|
| Germany | €4.95 | €12.95 |
| European Union | €7.95 | €19.95 |
| US & Canada | €19.95 | €34.95 |
| Rest of world | €24.95 | €44.95 |

## Contact
- **Phone**: +49 40 5550 1234 (German and English). Calls cost your usual rate.
- **Stores**: Hamburg, Berlin.
"""


@pytest.mark.parametrize(("asked", "countries"), [
    ("do you ship to zurich", ["Switzerland"]),
    ("delivery to krakow how many days", ["Poland", "European Union"]),
    ("im in the states, do i pay import tax", ["United States"]),
    ("shipping to the USA?", ["United States"]),
    ("ordering from Northern Ireland", ["United Kingdom"]),  # not Ireland
    ("can you ship it to us by friday", []),  # the pronoun
    ("do you answer in German or Polish", []),  # languages are not places
])
def test_a_city_or_an_abbreviation_means_a_country(asked: str, countries: list[str]) -> None:
    assert places(asked) == countries


def test_a_city_the_shop_writes_about_itself_is_not_read_as_its_country() -> None:
    assert places("where is your berlin store", frozenset({"berlin", "store"})) == []
    assert places("where is your berlin store") == ["Germany", "European Union"]


def test_the_shops_own_lists_name_the_group_each_member_is_in() -> None:
    found = groups([SHIPPING])

    assert found["poland"] == ["European Union"]
    assert found["australia"] == ["Rest of world"]
    assert found["united states"] == ["US & Canada"]  # "the", "(all 50 states)" left out
    assert "+49 40 5550 1234" not in found and "calls cost your usual rate" not in found
    assert "mainland germany" not in found  # not a list of names
    assert found["hamburg"] == ["Stores"]
    assert groups(["**Cards:** Visa, Mastercard and American Express."]) == {
        "visa": ["Cards"], "mastercard": ["Cards"], "american express": ["Cards"]}


def test_the_question_names_the_country_and_the_shops_zone_for_it() -> None:
    rewriter = Rewriter(SHIPPING.replace("*", " ").split(), groups([SHIPPING]))

    assert rewriter.rewrite("shipping cost to sydney?") == \
        "shipping cost to sydney? (Australia, Rest of world)"
    assert rewriter.rewrite("do u ship to usa") == \
        "do you ship to usa (United States, US & Canada)"
    assert rewriter.rewrite("postage to munich") == \
        "postage to munich (shipping cost, Germany)"  # the shop's zones, not the union
    assert rewriter.rewrites("shipping cost to sydney?")[0] == "shipping cost to sydney?"
    # A shop that lists no zones: the country alone.
    assert Rewriter(["shipping"]).rewrite("ship to zurich?") == "ship to zurich? (Switzerland)"


@pytest.mark.asyncio
async def test_the_answer_quotes_the_row_of_the_zone_the_visitor_is_in(
        store: Store, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "shipping.md").write_text(SHIPPING)
    tenant_id = str(uuid.uuid4())
    await store.sync(tenant_id, docs)
    knowledge = KnowledgeAnswers(store.retriever, MemoryAnswerCache(), None)
    shop = Tenant(tenant_id, "zones", "Zones", None, 30, "demo", None)

    sydney = await knowledge.answer(shop, "how much is shipping to sydney?")
    krakow = await knowledge.answer(shop, "shipping cost to krakow")
    # Germany is in the European Union, but this shop's zone for it is its own.
    munich = await knowledge.answer(shop, "how much is postage to munich?")

    assert not sydney.abstained and "Rest of world" in sydney.text and "€24.95" in sydney.text
    assert "€7.95" not in sydney.text
    assert "European Union" in krakow.text and "€7.95" in krakow.text
    assert "€24.95" not in krakow.text
    assert "Germany" in munich.text and "€4.95" in munich.text
    assert "€7.95" not in munich.text
    # A city the pages never name is no sign that they do not answer: it is read as its country.
    assert store.retriever.ranking(tenant_id, "do you ship to zurich").unknown_terms == ()
    assert store.retriever.ranking(tenant_id, "do you ship tents").unknown_terms == ("tent",)
