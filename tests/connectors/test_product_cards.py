"""A product under a knowledge answer, as each channel shows it.

The bot's reply is what Rasa's REST channel returns for the knowledge action: the answer's text,
then its custom payload as a message of its own (`custom.knowledge.products`, written by
actions/knowledge.py). The web widget gets a card (picture, name, price, facts, link), email a
card in its HTML part and the link in its text part, SMS and WhatsApp the short text with the
product's link under it. A card's values are text, and only http(s) links and pictures pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import pytest_asyncio

from connectors.channels.email.sender import SmtpSender
from connectors.channels.meta.sender import MetaWhatsAppSender
from connectors.channels.twilio.sender import TwilioSender
from connectors.channels.web.history import bot_messages
from connectors.outbound import OutboundContext, Reply
from connectors.rendering import ProductCard, messages_text, product_cards
from connectors.splitting import is_gsm7, segments
from tests.connectors.channels.harness import shop
from tests.connectors.channels.twilio.harness import CREDENTIALS, SHOP_SMS, SHOP_WHATSAPP

ANSWER = ("The Classic Denim Jacket comes in sizes XS, S, M, L, XL and XXL. "
          "It costs €89.00 and comes in Indigo or Washed Black.")
URL = "https://demo-outfitters.example/products/classic-denim-jacket"
IMAGE = "https://demo-outfitters.example/images/products/classic-denim-jacket.jpg"
JACKET = {"name": "Classic Denim Jacket", "price": "€89.00", "url": URL, "image": IMAGE,
          "sku": "JKT-DENIM",
          "facts": ["Sizes XS, S, M, L, XL and XXL", "Colours: Indigo and Washed Black"]}
SOURCES = [{"title": "Classic Denim Jacket", "url": URL, "document": "products.csv"}]
VISITOR = "+4915112345678"
SHOP = shop("corner-shop", name="Corner Shop")


def rasa_reply(*products: Any) -> list[dict[str, Any]]:
    """The knowledge action's answer as Rasa's REST channel returns it."""
    knowledge = {"mode": "extractive", "cached": False, "sources": SOURCES,
                 "products": list(products)}
    return [{"recipient_id": "s", "text": ANSWER},
            {"recipient_id": "s", "custom": {"knowledge": knowledge}}]


def reply(*products: dict[str, Any]) -> Reply:
    return Reply(question="what sizes does the denim jacket come in?",
                 messages=tuple(rasa_reply(*products)))


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:  # render never calls out
        yield client


# -- reading the payload ---------------------------------------------------------------------


def test_cards_are_read_from_the_custom_payload() -> None:
    assert product_cards(rasa_reply(JACKET)[1]) == [ProductCard(
        name="Classic Denim Jacket", price="€89.00",
        facts=("Sizes XS, S, M, L, XL and XXL", "Colours: Indigo and Washed Black"),
        url=URL, image=IMAGE)]
    assert product_cards(rasa_reply(JACKET)[0]) == []


def test_a_card_without_a_name_is_dropped_and_only_http_links_pass() -> None:
    cards = product_cards(rasa_reply(
        {"price": "€1"}, "not a card",
        {"name": "Tee", "url": "javascript:alert(1)", "image": "data:image/png;base64,AAAA",
         "facts": ["ok", 7, ""]})[1])

    assert cards == [ProductCard(name="Tee", facts=("ok",))]


# -- text-only channels ----------------------------------------------------------------------


def test_as_text_the_card_is_its_link_under_the_answer() -> None:
    assert messages_text(rasa_reply(JACKET)) == f"{ANSWER}\n\n{URL}"
    # several products: each link with its name
    two = messages_text(rasa_reply(JACKET, {**JACKET, "name": "Slim Jeans",
                                            "url": "https://shop.example/jeans"}))
    assert two.endswith(f"Classic Denim Jacket: {URL}\nSlim Jeans: https://shop.example/jeans")


@pytest.mark.asyncio
async def test_sms_is_the_short_answer_and_the_link(http: httpx.AsyncClient) -> None:
    context = OutboundContext(tenant=SHOP, credentials=CREDENTIALS, to=VISITOR,
                              reply_context={"to": SHOP_SMS, "from": VISITOR})

    (form,) = TwilioSender(http).render(context, [reply(JACKET)])

    assert form["Body"] == f"{ANSWER}\n\n{URL}"
    # GSM-7 has the euro sign: two segments, not the four of UCS-2.
    assert is_gsm7(form["Body"]) and segments(form["Body"]) == 2


@pytest.mark.asyncio
async def test_whatsapp_through_twilio_and_meta_is_the_answer_and_a_previewed_link(
        http: httpx.AsyncClient) -> None:
    twilio = OutboundContext(tenant=SHOP, credentials=CREDENTIALS, to=VISITOR,
                             reply_context={"to": f"whatsapp:{SHOP_WHATSAPP}"})
    meta = OutboundContext(tenant=SHOP, to=VISITOR, reply_context={"phone_number_id": "1065"},
                           credentials={"access_token": "EAAG", "phone_number_id": "1065"})

    (form,) = TwilioSender(http).render(twilio, [reply(JACKET)])
    (message,) = MetaWhatsAppSender(http).render(meta, [reply(JACKET)])

    assert form["Body"] == message["text"]["body"] == f"{ANSWER}\n\n{URL}"
    assert message["text"]["preview_url"] is True  # WhatsApp shows the product page's preview


# -- email -----------------------------------------------------------------------------------


def mail_for(*replies: Reply) -> EmailMessage:
    context = OutboundContext(
        tenant=SHOP, to="alex@example.com",
        credentials={"address": "support@shop.example", "smtp": {"host": "127.0.0.1"}},
        reply_context={"subject": "Sizes?", "message_id": "<a@mail.example>"})
    (mail,) = SmtpSender().render(context, list(replies))
    return mail


def body(mail: EmailMessage, subtype: str) -> str:
    part = mail.get_body((subtype,))
    assert part is not None
    return str(part.get_content())


def test_email_shows_a_card_in_html_and_the_link_in_text() -> None:
    mail = mail_for(reply(JACKET))

    html = body(mail, "html")
    assert f'<img src="{IMAGE}" alt="Classic Denim Jacket"' in html
    assert f'<a href="{URL}">View product</a>' in html
    assert "<strong>Classic Denim Jacket</strong>" in html and "€89.00" in html
    assert "Sizes XS, S, M, L, XL and XXL" in html
    assert html.index(ANSWER) < html.index("<strong>Classic Denim Jacket</strong>")
    assert body(mail, "plain").strip() == f"{ANSWER}\n\n{URL}"


def test_email_cards_are_escaped() -> None:
    html = body(mail_for(reply({"name": 'Tee <script>alert("x")</script>', "price": "<b>1</b>",
                                "url": 'https://shop.example/t?a=1&b="2"'})), "html")

    assert "<script>" not in html and "<b>1</b>" not in html
    assert "Tee &lt;script&gt;" in html
    assert "View product" not in html  # a URL with a quote in it is no link


# -- web widget ------------------------------------------------------------------------------


def test_the_widget_gets_the_card_with_the_answer_it_belongs_to() -> None:
    (message,) = bot_messages(rasa_reply(JACKET))

    assert message == {
        "text": ANSWER,
        "sources": [{"title": "Classic Denim Jacket", "url": URL}],
        "products": [{"name": "Classic Denim Jacket", "price": "€89.00", "url": URL,
                      "image": IMAGE,
                      "facts": ["Sizes XS, S, M, L, XL and XXL",
                                "Colours: Indigo and Washed Black"]}],
    }


def test_an_answer_without_products_is_unchanged_for_the_widget() -> None:
    plain: list[dict[str, Any]] = [{"text": "We ship to Canada."},
             {"custom": {"knowledge": {"mode": "llm", "sources": SOURCES}}}]

    assert bot_messages(plain) == [{"text": "We ship to Canada.",
                                    "sources": [{"title": "Classic Denim Jacket", "url": URL}]}]
