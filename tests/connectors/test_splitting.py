"""What an SMS costs and how long answers are cut: what a visitor's phone (and the bill) shows.

SMS are cut by segments; WhatsApp by one rule for both providers (Twilio and Meta's Cloud API),
so the same reply reads the same whoever delivers it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from connectors.channels.meta.sender import MetaWhatsAppSender
from connectors.channels.twilio.sender import TwilioSender
from connectors.outbound import OutboundContext, Reply
from connectors.splitting import (
    TWILIO_MAX_BODY,
    WHATSAPP_MAX_BODY,
    encoding,
    segments,
    split_at_length,
    split_for_sms,
    split_for_whatsapp,
)
from tests.connectors.channels.harness import shop
from tests.fakes.graph_server import MAX_BODY as META_MAX_BODY


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("Où est ma commande? Ça fait 5 jours. ÄÖÜ ñ ß", 1),  # all in the GSM-7 table
        ("é" * 160, 1),
    ],
)
def test_gsm7_texts_count_160_then_153_per_segment(text: str, expected: int) -> None:
    assert encoding(text) == "GSM-7"
    assert segments(text) == expected


def test_extension_characters_cost_two_septets() -> None:
    assert segments("€" * 80) == 1  # 160 septets
    assert segments("€" * 81) == 2
    assert segments("a" * 159 + "{") == 2  # 161 septets
    assert segments("[x]" * 32) == 1  # 32 * 5 septets = 160
    assert segments("[x]" * 33) == 2


def test_an_escaped_character_never_straddles_two_segments() -> None:
    # 306 septets would be exactly 2 x 153, but the € cannot be cut in half: 3 segments.
    assert segments("a" * 152 + "€" + "a" * 152) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 68 + "😀", 1),  # 70 UTF-16 units
        ("a" * 69 + "😀", 2),
        ("ł" * 70, 1),
        ("ł" * 71, 2),
        ("ł" * 134, 2),
        ("ł" * 135, 3),
        ("Thanks for your order’s patience", 1),  # a curly quote alone switches to UCS-2
    ],
)
def test_one_character_outside_gsm7_makes_it_ucs2(text: str, expected: int) -> None:
    assert encoding(text) == "UCS-2"
    assert segments(text) == expected


def test_a_surrogate_pair_never_straddles_two_segments() -> None:
    assert segments("a" * 66 + "😀" + "a" * 66) == 3  # 134 units, but the emoji moves over


def test_curly_quote_triples_the_cost_of_a_long_text() -> None:
    plain = "x" * 300
    assert segments(plain) == 2
    assert segments(plain + "’") == 5


# -- splitting SMS --------------------------------------------------------------------------------

PARAGRAPH = ("Your order 1001 left our warehouse on Monday. It travels with UPS and should arrive "
             "within three business days. You can follow it with the tracking link below.")
CHOICES = ("What would you like to do next?\n1. Track another order\n2. Start a return\n"
           "3. Talk to a person\nReply with a number.")


def words(text: str) -> list[str]:
    return text.split()


def test_short_text_is_one_body_unchanged() -> None:
    assert split_for_sms("  Hello there!  ") == ["Hello there!"]
    assert split_for_sms("   ") == []


def test_long_text_is_cut_into_bodies_of_at_most_max_segments() -> None:
    text = "\n\n".join([PARAGRAPH] * 30 + [CHOICES])
    parts = split_for_sms(text, max_segments=2)

    assert len(parts) > 1
    assert all(segments(p) <= 2 for p in parts)
    assert words(" ".join(parts)) == words(text)  # nothing lost, nothing cut inside a word


def test_cuts_fall_between_paragraphs_when_they_can() -> None:
    text = "\n\n".join([PARAGRAPH] * 6)  # ~170 chars each: two per 3-segment body
    parts = split_for_sms(text, max_segments=3)
    assert all(p == PARAGRAPH or p == f"{PARAGRAPH}\n\n{PARAGRAPH}" for p in parts)


def test_cuts_fall_after_sentences_before_words() -> None:
    sentence = "The parcel is on its way to you now."
    text = " ".join([sentence] * 40)
    for part in split_for_sms(text, max_segments=1):
        assert part.endswith(".")
        assert part.startswith("The parcel")


def test_numbered_choices_stay_whole() -> None:
    text = "x " * 120 + "\n" + CHOICES  # the list starts near the end of the first body
    parts = split_for_sms(text, max_segments=2)
    joined = "\n".join(parts)
    for line in CHOICES.splitlines():
        assert any(line in part for part in parts), line
    assert not re.search(r"\d\.\s*$", parts[0])  # never a lonely "1." at a cut
    assert words(joined) == words(text)


def test_bodies_stay_within_twilios_1600_characters_whatever_max_segments() -> None:
    text = " ".join(["word"] * 1000)
    parts = split_for_sms(text, max_segments=100)
    assert all(len(p) <= TWILIO_MAX_BODY == 1600 for p in parts)
    assert words(" ".join(parts)) == words(text)


def test_emoji_text_is_split_without_breaking_an_emoji() -> None:
    text = "Thanks 🙏 " * 60
    parts = split_for_sms(text, max_segments=1)
    assert all(segments(p) == 1 for p in parts)
    assert all(p.encode("utf-16", "strict") for p in parts)
    assert words(" ".join(parts)) == words(text)


def test_each_body_is_counted_in_its_own_encoding() -> None:
    text = "a " * 75 + "🙂"  # as one UCS-2 text: 3 bodies of 70; counted per body: 2
    parts = split_for_sms(text, max_segments=1)
    assert encoding(parts[0]) == "GSM-7"
    assert len(parts) == 2


def test_a_word_longer_than_a_body_is_cut_inside_as_a_last_resort() -> None:
    url = "https://shop.example/track?" + "a1" * 200
    parts = split_for_sms(f"Track it here: {url}", max_segments=1)
    assert all(segments(p) == 1 for p in parts)
    assert "".join(p for p in parts[1:]) == url


def test_a_cut_inside_a_long_word_never_separates_an_emoji_sequence() -> None:
    family = "👨\u200d👩\u200d👧"  # one visible emoji, five code points
    text = family * 40
    for part in split_for_sms(text, max_segments=1):
        assert not part.startswith("\u200d") and not part.endswith("\u200d")
    assert "".join(split_for_sms(text, max_segments=1)) == text


def test_at_least_one_segment_and_one_character_are_required() -> None:
    with pytest.raises(ValueError):
        split_for_sms("hello", max_segments=0)
    with pytest.raises(ValueError):
        split_at_length("hello", 0)


# -- splitting at a length ----------------------------------------------------------------------


def test_split_at_length_falls_back_to_words_then_hard_cuts() -> None:
    parts = split_at_length("lorem " * 2000, 100)
    assert all(len(p) <= 100 and not p.startswith(" ") and p.endswith("lorem") for p in parts)
    assert split_at_length("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]
    assert split_at_length("short", 100) == ["short"]
    assert split_at_length("   ", 100) == []


def test_length_is_counted_in_utf16_units_as_providers_count_it() -> None:
    parts = split_at_length("😀" * 100, 100)  # each emoji is a surrogate pair: two units
    assert [len(p) for p in parts] == [50, 50]


# -- splitting for WhatsApp, whichever provider delivers ----------------------------------------


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_whatsapp_bodies_fit_both_providers() -> None:
    assert WHATSAPP_MAX_BODY == TWILIO_MAX_BODY == 1600 <= META_MAX_BODY == 4096


def test_whatsapp_split_only_cares_about_1600_characters() -> None:
    text = "\n\n".join([PARAGRAPH] * 20)
    parts = split_for_whatsapp(text)
    assert len(parts) == 3
    assert all(len(p) <= 1600 for p in parts)
    assert all(p.endswith("below.") for p in parts)  # cut between paragraphs


@pytest.mark.parametrize(
    "text",
    [
        "\n\n".join([PARAGRAPH] * 20),
        "Thanks 🙏 for waiting! " * 300,
        "😀" * 5000,
        "Пакет уже в пути. " * 400,
        " ".join(["word"] * 2000),
        "https://shop.example/track?" + "a1" * 2000,
    ],
    ids=["paragraphs", "emoji-in-text", "only-emoji", "cyrillic", "words", "one-long-word"],
)
def test_every_whatsapp_part_is_at_most_1600_utf16_units_and_nothing_is_lost(text: str) -> None:
    parts = split_for_whatsapp(text)
    assert len(parts) > 1
    assert all(utf16_units(p) <= WHATSAPP_MAX_BODY for p in parts)
    assert all(len(p) <= META_MAX_BODY for p in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())


def test_whatsapp_cuts_fall_after_sentences_then_lines_before_words() -> None:
    sentences = "The parcel is on its way to you now. " * 100
    assert all(p.endswith("now.") for p in split_for_whatsapp(sentences))
    lines = "\n".join(f"{i}. Order {1000 + i} shipped with UPS, arriving Friday" for i in range(60))
    assert all(p.endswith("arriving Friday") for p in split_for_whatsapp(lines))


def test_a_short_whatsapp_reply_is_one_part_and_nothing_is_no_part() -> None:
    assert split_for_whatsapp("  Hi Jana!\n") == ["Hi Jana!"]
    assert split_for_whatsapp(" \n ") == []


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "text",
    ["\n\n".join([PARAGRAPH] * 20), "Thanks 🙏 for waiting! " * 300, "😀" * 5000,
     "Our shoes are made in Portugal — from vegetable-tanned leather… " * 80],
    ids=["paragraphs", "emoji-in-text", "only-emoji", "typographic"],
)
async def test_the_same_long_reply_is_cut_into_the_same_parts_whichever_provider_sends_it(
    http: httpx.AsyncClient, text: str
) -> None:
    reply = Reply(question="returns?", messages=({"text": text},))
    via_twilio = TwilioSender(http).render(OutboundContext(
        tenant=shop(), credentials={"account_sid": "AC1", "auth_token": "t"}, to="+4915112345678",
        reply_context={"to": "whatsapp:+15550002222", "from": "whatsapp:+4915112345678"}),
        [reply])
    via_meta = MetaWhatsAppSender(http).render(OutboundContext(
        tenant=shop(), credentials={"access_token": "EAAG", "phone_number_id": "1065"},
        to="+4915112345678", reply_context={"phone_number_id": "1065", "wa_id": "4915112345678"}),
        [reply])

    twilio_bodies = [part["Body"] for part in via_twilio]
    meta_bodies = [part["text"]["body"] for part in via_meta]
    assert len(twilio_bodies) > 1
    assert twilio_bodies == meta_bodies == split_for_whatsapp(text)
