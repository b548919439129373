"""Email bodies as the text a visitor meant: HTML flattened, quoted history and signatures cut,
several questions split into several turns.

Pure functions, no I/O. `strip_reply` relies on mail-parser-reply (reply headers such as
"On … wrote:", "Am … schrieb …:", Outlook's "-----Original Message-----" / "From: … Sent: …"
blocks in the languages it knows) and adds what it leaves in: the RFC 3676 "-- " signature
delimiter, "Sent from my iPhone"-style device footers, stray ">" quote lines and a trailing
sign-off block ("Thanks,\\nAlex").
"""

from __future__ import annotations

import re
from functools import lru_cache

from bs4 import BeautifulSoup, NavigableString
from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES

MAX_TURNS = 5

# --- HTML -------------------------------------------------------------------------------------

_DROP_TAGS = ("script", "style", "head", "title", "meta", "noscript", "template")
_PARAGRAPH_TAGS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre")
_LINE_TAGS = ("div", "tr", "section", "article", "header", "footer", "address", "dt", "dd")


def html_to_text(html: str) -> str:
    """Visible text of an HTML body: <p> and headings become paragraphs, <br>/<div>/<li> lines,
    <blockquote> lines are prefixed with "> " so quoted history can be cut like in plain text."""
    if not html or not html.strip():
        return ""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    # Source line breaks are layout, not content: collapse whitespace outside <pre>.
    for string in soup.find_all(string=True):
        if isinstance(string, NavigableString) and string.find_parent("pre") is None:
            string.replace_with(re.sub(r"\s+", " ", str(string)))
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all("li"):
        tag.insert_before("\n- ")
    for tag in soup.find_all(_LINE_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    for tag in soup.find_all(_PARAGRAPH_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    for cell in soup.find_all(("td", "th")):
        cell.insert_after(" ")
    # Innermost quotes first, so nested quotes get "> > ".
    for quote in reversed(soup.find_all("blockquote")):
        inner = _tidy(quote.get_text())
        quoted = "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
        quote.replace_with(f"\n{quoted}\n")
    return _tidy(soup.get_text())


def _tidy(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- quoted history and signatures ------------------------------------------------------------

_SIGNATURE_DELIMITER = re.compile(r"^(--|__+|—)\s*$")
_DEVICE_FOOTER = re.compile(
    r"^(sent from my \w+|sent from (outlook|mail|yahoo mail|gmail)\b|get outlook for \w+"
    r"|sent from my (iphone|ipad|android|samsung|galaxy|phone|mobile|blackberry)"
    r"|von meinem \w+ gesendet|gesendet von meinem \w+|envoy[ée] de mon \w+"
    r"|enviado desde mi \w+|inviato da(l mio)? \w+|verzonden vanaf mijn \w+)",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|forwarded message|ursprüngliche nachricht"
    r"|message d'origine|mensaje original|messaggio originale)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(from|von|de|da|van)\s*:\*?\s+\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(sent|date|gesendet|datum|envoyé|enviado|fecha|inviato|verzonden|to|an|subject)"
    r"\s*:", re.IGNORECASE,
)
_WROTE = re.compile(
    r"^(on|am|le|el|il|op)\b.{4,200}(wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:?\s*$",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^(thanks?( you)?( (so|very) much)?( in advance)?|many thanks|thx|ty|cheers|regards"
    r"|best( regards| wishes)?|kind regards|warm regards|all the best|sincerely( yours)?"
    r"|yours( sincerely| truly)?|br|greetings|take care|talk soon"
    r"|danke( schön| sehr| im voraus)?|vielen dank|viele grüße|liebe grüße|beste grüße"
    r"|mit freundlichen grüßen|mfg|lg|gruß|grüße|merci( beaucoup)?|cordialement|bien à vous"
    r"|gracias|saludos|un saludo|grazie|cordiali saluti|saluti|bedankt|groeten"
    r"|met vriendelijke groet)"
    r"\s*[,.!:;]*\s*$",
    re.IGNORECASE,
)
_GREETING = re.compile(
    r"^(hi|hello|hey|hiya|dear|good (morning|afternoon|evening|day)|greetings|hallo|guten tag"
    r"|moin|servus|bonjour|salut|hola|buongiorno|ciao|hoi|goedemiddag|goedemorgen)\b[^?]{0,40}$",
    re.IGNORECASE,
)
_NAME_LINE = re.compile(r"^[^\d?@:/]{1,40}$")  # "Alex", "Alex M.", "The Millers"


@lru_cache(maxsize=1)
def _parser() -> EmailReplyParser:
    return EmailReplyParser(languages=list(MAIL_LANGUAGES))


def strip_reply(text: str) -> str:
    """The newest part of a reply: no quoted history, no signature, no sign-off block."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    latest = _parser().parse_reply(text)
    latest = text if latest is None else latest
    return _cut_leftovers(latest)


def _cut_leftovers(text: str) -> str:
    lines = text.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _SIGNATURE_DELIMITER.match(line.rstrip("\n")) and kept:
            break
        if _DEVICE_FOOTER.match(stripped) or _ORIGINAL_MESSAGE.match(stripped):
            break
        if _WROTE.match(stripped):
            break
        if _HEADER_FROM.match(stripped) and any(
            _HEADER_NEXT.match(nxt) for nxt in lines[index + 1 : index + 4]
        ):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line.rstrip())
    return _drop_sign_off("\n".join(kept)).strip()


def _drop_sign_off(text: str) -> str:
    """Cut "Thanks,\\nAlex" / "Viele Grüße\\nAnna" at the end (a sign-off plus a short name)."""
    lines = text.rstrip().split("\n")
    for start in range(len(lines) - 1, max(-1, len(lines) - 5), -1):
        if _SIGN_OFF.match(lines[start].strip()):
            tail = [line.strip() for line in lines[start + 1 :] if line.strip()]
            if len(tail) <= 3 and all(_NAME_LINE.match(line) for line in tail):
                return "\n".join(lines[:start])
    return text


# --- several questions -> several turns -------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?？。])\s+(?=\S)")


def _is_question(sentence: str) -> bool:
    return sentence.rstrip(" )\"'»”").endswith(("?", "？"))


def _content_lines(paragraph: str) -> list[str]:
    """A paragraph's lines without greetings and thanks/sign-off lines (and the name after)."""
    kept: list[str] = []
    lines = [line.strip() for line in paragraph.split("\n") if line.strip()]
    for index, line in enumerate(lines):
        if "?" in line:
            kept.append(line)
            continue
        if _GREETING.match(line) and len(line.split()) <= 6:
            continue
        if _SIGN_OFF.match(line):
            rest = lines[index + 1 :]
            if all(_NAME_LINE.match(r) and len(r.split()) <= 4 for r in rest):
                break
            continue
        kept.append(line)
    return kept


def split_questions(text: str) -> list[str]:
    """One turn per question; statements stay with the question they follow (or the first one
    when they come before it). A paragraph that asks something after an earlier question
    starts a new turn. No question at all: one turn. At most MAX_TURNS turns."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    groups: list[list[str]] = []
    current: list[str] = []
    current_has_question = False
    for paragraph in paragraphs:
        lines = _content_lines(paragraph)
        if not lines:
            continue
        sentences = [s for s in _SENTENCE_END.split(" ".join(lines)) if s]
        asks = any(_is_question(s) for s in sentences)
        if asks and current_has_question:
            groups.append(current)
            current, current_has_question = [], False
        for sentence in sentences:
            if _is_question(sentence) and current_has_question:
                groups.append(current)
                current, current_has_question = [], False
            current.append(sentence)
            current_has_question = current_has_question or _is_question(sentence)
    if current:
        groups.append(current)
    turns = [" ".join(group).strip() for group in groups if group]
    if not turns:
        return [text.strip()] if text.strip() else []
    if len(turns) > MAX_TURNS:
        turns = turns[: MAX_TURNS - 1] + [" ".join(turns[MAX_TURNS - 1 :])]
    return turns
