"""Long answers cut into provider messages: one rule set per channel, whoever delivers it.

- SMS (`split_for_sms`): an SMS is 140 bytes. Text that fits the GSM 03.38 alphabet is packed
  7 bits a character (GSM-7): 160 characters, or 153 per segment once the message is split (the
  user-data header takes the rest). Characters of the GSM extension table (``{ } [ ] ~ \\ | ^
  €`` and form feed) are sent as ESC + char and cost two septets. One character outside the
  alphabet (an emoji, a curly quote, Cyrillic) switches the whole message to UCS-2: 70 UTF-16
  code units, or 67 per segment; an emoji outside the BMP is a surrogate pair and costs two. A
  segment never splits a two-septet character or a surrogate pair, so counting packs greedily
  instead of dividing. Twilio refuses bodies over 1600 characters (error 21617) and bills every
  segment, so long answers go as several messages of at most `max_segments` segments each.
- WhatsApp (`split_for_whatsapp`): the same reply reads the same whether Twilio or Meta's Cloud
  API delivers it, so both cut at Twilio's limit of 1600 characters (Meta takes 4096, so every
  part fits both).

Cuts fall between paragraphs, then sentences, then lines, then words (`split_text`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_MULTI = 160, 153  # septets
UCS2_SINGLE, UCS2_MULTI = 70, 67  # UTF-16 code units
TWILIO_MAX_BODY = 1600  # characters Twilio accepts in one Body
WHATSAPP_MAX_BODY = TWILIO_MAX_BODY  # Meta's Cloud API takes up to 4096
DEFAULT_MAX_SEGMENTS = 10

# Where a cut may fall, best first: (pattern matching the gap, name). A cut at index i keeps
# text[:i] in this body and starts the next one at text[i:] (leading whitespace dropped).
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
# A digit before the full stop is a list number ("1. Track an order"), not a sentence end.
_SENTENCE = re.compile(r"(?<=[^\d\s][.!?…])[\"')\]]*\s")
_LINE = re.compile(r"\n")
_WORD = re.compile(r"\s")
_BOUNDARIES = (_PARAGRAPH, _SENTENCE, _LINE, _WORD)


def is_gsm7(text: str) -> bool:
    """True when every character exists in the GSM-7 basic or extension table."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _units(text: str) -> tuple[list[int], int, int]:
    """Per-character cost in the text's encoding, and that encoding's segment sizes."""
    if is_gsm7(text):
        return [2 if c in GSM7_EXTENSION else 1 for c in text], GSM7_SINGLE, GSM7_MULTI
    return [2 if ord(c) > 0xFFFF else 1 for c in text], UCS2_SINGLE, UCS2_MULTI


def segments(text: str) -> int:
    """The number of SMS segments `text` is sent as (at least 1, even for "")."""
    costs, single, multi = _units(text)
    if sum(costs) <= single:
        return 1
    count, used = 1, 0
    for cost in costs:  # a 2-septet character or a surrogate pair never straddles segments
        if used + cost > multi:
            count, used = count + 1, 0
        used += cost
    return count


def encoding(text: str) -> str:
    """"GSM-7" or "UCS-2": what a handset receives, and so what the segments are counted in."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_for_sms(text: str, max_segments: int = DEFAULT_MAX_SEGMENTS) -> list[str]:
    """Message bodies of at most `max_segments` segments (and 1600 characters) each.

    Whitespace at the cuts is dropped; nothing else is changed. Each body is counted in its
    own encoding, so an emoji in one part does not make the other parts UCS-2.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")

    def fits(part: str) -> bool:
        return _utf16_len(part) <= TWILIO_MAX_BODY and segments(part) <= max_segments

    return split_text(text, fits)


def split_at_length(text: str, max_chars: int) -> list[str]:
    """Bodies of at most `max_chars` UTF-16 units."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    return split_text(text, lambda part: _utf16_len(part) <= max_chars)


def split_for_whatsapp(text: str) -> list[str]:
    """WhatsApp bodies, the same for both providers (see the module docstring)."""
    return split_at_length(text, WHATSAPP_MAX_BODY)


def split_text(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Cut `text` into the fewest parts that `fits` accepts, at the best boundary available.

    `fits` must be monotone: if a text fits, every prefix of it fits too.
    """
    rest = text.strip()
    parts: list[str] = []
    while rest:
        if fits(rest):
            parts.append(rest)
            break
        limit = _longest_fitting_prefix(rest, fits)
        cut = _best_cut(rest, limit)
        part = rest[:cut].rstrip()
        parts.append(part)
        rest = rest[cut:].lstrip()
    return parts


def _longest_fitting_prefix(text: str, fits: Callable[[str], bool]) -> int:
    """The largest n with fits(text[:n]), by bisection (at least 1 so the loop advances)."""
    low, high = 1, len(text)  # fits(text[:high]) is known False
    if not fits(text[:1]):
        return 1
    while high - low > 1:
        middle = (low + high) // 2
        if fits(text[:middle]):
            low = middle
        else:
            high = middle
    return low


def _best_cut(text: str, limit: int) -> int:
    """Where to cut so text[:cut] (with limit = longest fitting prefix) reads well.

    A boundary of a better kind wins when it keeps the part at least half full; otherwise
    any word boundary; a single word longer than a whole part (a long URL) is cut inside,
    but never between a character and its combining marks or inside an emoji sequence.
    """
    window = text[: limit + 1]  # a gap right after the prefix is a valid cut at `limit`
    last_word = 0
    for pattern in _BOUNDARIES:
        cuts = [m.start() for m in pattern.finditer(window) if 0 < m.start() <= limit]
        if pattern is _SENTENCE:
            cuts = [m.end() - 1 for m in pattern.finditer(window) if 0 < m.end() - 1 <= limit]
        if cuts and cuts[-1] * 2 >= limit:
            return cuts[-1]
        if pattern is _WORD and cuts:
            last_word = cuts[-1]
    if last_word:
        return last_word
    cut = limit
    while cut > 1 and _joined_to_previous(text, cut):
        cut -= 1
    return cut


def _joined_to_previous(text: str, index: int) -> bool:
    """True when text[index] belongs to the same visible character as text[index - 1]."""
    char, previous = text[index], text[index - 1]
    return (
        unicodedata.combining(char) != 0
        or char in "\u200d\ufe0f\ufe0e"
        or previous == "\u200d"
        or 0x1F3FB <= ord(char) <= 0x1F3FF  # skin-tone modifiers
        or 0xDC00 <= ord(char) <= 0xDFFF  # a lone low surrogate (text from a bad decoder)
    )


# Typographic characters outside GSM-7 that have a plain equivalent (Twilio's "smart
# encoding" does the same): one curly quote would otherwise make the whole SMS UCS-2.
_PLAIN = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
                        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2013": "-",
                        "\u2014": "-", "\u2026": "...", "\u00a0": " ", "\u2022": "-",
                        "\u2032": "'", "\u2033": '"'})


def plain_punctuation(text: str) -> str:
    """Curly quotes, dashes, ellipses and the like as their GSM-7 look-alikes."""
    return text.translate(_PLAIN)
