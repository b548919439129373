"""Knowledge questions in real conversations: gateway → Rasa → action server → index → Claude
(a local fake of the Messages API, see conftest.py), on both storage shapes.

What a visitor notices: a general question gets a short answer from the shop's documents
with its sources, an uncovered one gets "I don't know" and the offer of a person, and a
question asked in the middle of a return does not lose the return.
"""

from __future__ import annotations

import pytest

from tests.fakes.anthropic_server import AnthropicFake, grounded_responder, parse_prompt
from tests.integration.conftest import Visitor
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def cold_answer_cache(stack: Stack) -> None:
    """These tests watch what is asked of Claude: answers other tests cached in Redis (same
    question, same index) would hide it. The embedded cache lives in the action server."""
    if stack.redis_url:
        import redis

        client = redis.Redis.from_url(stack.redis_url)
        keys = list(client.scan_iter("switchboard:kb-answer:*"))
        if keys:
            client.delete(*keys)
        client.close()


def sources(visitor: Visitor) -> list[dict[str, str]]:
    """Rasa's REST channel sends a message's text and its custom payload as two replies."""
    return [s for r in visitor.replies
            for s in (r.get("custom") or {}).get("knowledge", {}).get("sources", [])]


def test_general_question_is_answered_from_the_shops_documents(
    visitor: Visitor, anthropic_api: AnthropicFake
) -> None:
    anthropic_api.responder = grounded_responder
    before = len(anthropic_api.messages_requests)

    reply = visitor.say("do you ship to canada?")

    asked = anthropic_api.messages_requests[before:]
    assert len(asked) == 1 and "Demo Outfitters" in asked[0].data["system"]
    passages, question = parse_prompt(asked[0].data["messages"][0]["content"])
    assert question == "do you ship to canada?"
    assert any("Canada" in p.text for p in passages)
    # The fake answers with a sentence of one passage; the visitor sees it and where it is from.
    assert reply.strip() and any(reply.strip() in " ".join(p.text.split()) for p in passages)
    assert [s["document"] for s in sources(visitor)] == ["shipping.md"]
    assert sources(visitor)[0]["url"] == "https://demo-outfitters.example/pages/shipping"


def test_product_question_finds_the_catalogue_row(
    visitor: Visitor, anthropic_api: AnthropicFake
) -> None:
    anthropic_api.responder = lambda body: "The Classic Denim Jacket comes in XS to XXL. [1]"
    before = len(anthropic_api.messages_requests)

    reply = visitor.say("what sizes does the denim jacket come in?")

    prompt = anthropic_api.messages_requests[before].data["messages"][0]["content"]
    passages, _ = parse_prompt(prompt)
    assert passages[0].title == "Product catalogue > Classic Denim Jacket"
    assert "XS;S;M;L;XL;XXL" in passages[0].text
    assert reply.strip() == "The Classic Denim Jacket comes in XS to XXL."
    assert sources(visitor) == [{
        "title": "Classic Denim Jacket", "document": "products.csv",
        "url": "https://demo-outfitters.example/products/classic-denim-jacket",
    }]
    # The cited row comes with its card, for channels that draw one.
    (card,) = [p for r in visitor.replies
               for p in (r.get("custom") or {}).get("knowledge", {}).get("products", [])]
    assert card["name"] == "Classic Denim Jacket" and card["price"] == "€89.00"
    assert card["url"] == "https://demo-outfitters.example/products/classic-denim-jacket"
    assert card["image"].endswith("/images/products/classic-denim-jacket.jpg")


def test_refund_timing_is_a_question_not_a_return(
    visitor: Visitor, anthropic_api: AnthropicFake
) -> None:
    anthropic_api.responder = grounded_responder

    reply = visitor.say("how long do returns take to be refunded?")

    assert "order number" not in reply.lower()
    assert any(s["document"] == "returns.md" for s in sources(visitor))


@pytest.mark.parametrize("asked", ["I'd like to see the invoice #85632",
                                   "I want to see bill #12588"])
def test_an_invoice_asked_for_by_its_number_is_a_question_not_an_order_lookup(
    visitor: Visitor, anthropic_api: AnthropicFake, asked: str
) -> None:
    """The number is read as an order number too (any 4-8 digits are), but the visitor asks
    for the bill: the answer comes from the documents, no order form starts."""
    anthropic_api.responder = grounded_responder

    reply = visitor.say(asked)

    assert "what email address" not in reply.lower()  # the order form's next question
    assert "what's your order number" not in reply.lower()
    assert {s["document"] for s in sources(visitor)} & {"payments.html", "account.md"}, reply


def test_uncovered_question_says_so_and_offers_a_person(visitor: Visitor) -> None:
    reply = visitor.say("what's the capital of mongolia?")

    assert "don't" in reply.lower() or "not sure" in reply.lower()
    assert sources(visitor) == []
    assert "team" in visitor.say("yes please").lower()


def test_question_in_the_middle_of_a_return_goes_back_to_the_return(
    visitor: Visitor, anthropic_api: AnthropicFake
) -> None:
    anthropic_api.responder = grounded_responder

    assert "order number" in visitor.say("I want to return something").lower()
    reply = visitor.say("do you ship to canada?")
    assert [s["document"] for s in sources(visitor)] == ["shipping.md"]
    assert reply.lower().rstrip().endswith(("order number?", "(for example #1001)."))
    assert "email" in visitor.say("1002").lower()


def test_api_down_still_answers_from_the_documents(
    visitor: Visitor, anthropic_api: AnthropicFake
) -> None:
    anthropic_api.responder = grounded_responder
    anthropic_api.fail_next(529, times=3)

    reply = visitor.say("can I pay with paypal?")

    assert "PayPal" in reply
    modes = [r["custom"]["knowledge"]["mode"] for r in visitor.replies if "custom" in r]
    assert modes == ["fallback"]
