"""Turn a file a shop owner hands us into a `Document`: a title, a URL to cite, and sections.

One loader per format, dispatched by file suffix. Each section keeps the heading path it sits
under, so chunking can put "Shipping > Canada" in front of the text it belongs to. CSV files
are either FAQs (a question and an answer column: one section per row) or catalogues (one
section per row, every column written out as "Column: value").
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup
from bs4.element import Tag

URL_LINE = re.compile(r"^\s*(?:url|source)\s*:\s*(https?://\S+)\s*$", re.I)
MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
HTML_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# Page furniture that is never content.
HTML_BOILERPLATE = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form",
                    "template", "svg", "iframe")
# Banners and pop-ups that sit in the body without a semantic tag, recognised by id/class.
HTML_FURNITURE = re.compile(r"cookie|consent|gdpr|newsletter|announcement|promo-bar|popup|modal",
                            re.I)


class UnsupportedDocument(ValueError):
    """The file's format is not one we read, or it holds no text."""


@dataclass(frozen=True)
class Section:
    headings: tuple[str, ...]  # outermost first, the document title excluded
    text: str
    url: str | None = None  # a catalogue row's own page


@dataclass(frozen=True)
class Document:
    source: str  # how the owner named it: a file name relative to what was ingested
    title: str
    url: str | None
    sections: tuple[Section, ...] = field(default_factory=tuple)


def _clean(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text).strip()


def _inline(element: Tag) -> str:
    """An element's text with inline tags joined naturally ("Visa, Mastercard", not "Visa ,")."""
    text = _clean(element.get_text(" "))
    return re.sub(r"\s+([,.;:!?)\]])", r"\1", re.sub(r"([(\[])\s+", r"\1", text))


def _take_url(lines: list[str]) -> tuple[str | None, list[str]]:
    """A leading `URL: https://…` line names the page to cite; it is not content."""
    for i, line in enumerate(lines[:5]):
        match = URL_LINE.match(line)
        if match:
            return match.group(1), lines[:i] + lines[i + 1:]
    return None, lines


class _Sections:
    """Text grouped under the heading path it sits in; the first level-1 heading is the title.

    `join` turns the buffered blocks of one section into its text (formats differ)."""

    def __init__(self, join: Callable[[list[Any]], str]) -> None:
        self.title = ""
        self.sections: list[Section] = []
        self.buffer: list[Any] = []
        self._stack: list[tuple[int, str]] = []
        self._join = join

    def heading(self, level: int, text: str) -> None:
        self.flush()
        if level == 1 and not self.title:
            self.title = text
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))

    def flush(self) -> None:
        text = self._join(self.buffer).strip()
        if text:
            self.sections.append(Section(tuple(h for _, h in self._stack), text))
        self.buffer.clear()


def load_markdown(source: str, raw: str) -> Document:
    url, lines = _take_url(raw.splitlines())
    found = _Sections("\n".join)
    for line in lines:
        match = MD_HEADING.match(line)
        if match:
            found.heading(len(match.group(1)), _clean(match.group(2)))
        else:
            found.buffer.append(line.rstrip())
    found.flush()
    return Document(source, found.title or _title_from(source), url, tuple(found.sections))


def load_text(source: str, raw: str) -> Document:
    """Plain text: the first line is the title; a short line followed by a blank line, or an
    underlined line (=== / ---), or an ALL-CAPS line starts a section."""
    url, lines = _take_url(raw.splitlines())
    lines = [line.rstrip() for line in lines]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return Document(source, _title_from(source), url, ())
    title = _clean(lines.pop(0))
    if lines and re.fullmatch(r"[=\-]{3,}", lines[0].strip()):
        lines.pop(0)
    found = _Sections("\n".join)
    found.title = title  # plain text has one level of headings below its title line
    for i, line in enumerate(lines):
        stripped = line.strip()
        underline = i + 1 < len(lines) and re.fullmatch(r"[=\-]{3,}", lines[i + 1].strip() or "x")
        if re.fullmatch(r"[=\-]{3,}", stripped):
            continue
        before_blank = i + 1 >= len(lines) or not lines[i + 1].strip()
        after_blank = i == 0 or not lines[i - 1].strip()
        looks_like_heading = (
            stripped and len(stripped) <= 60 and not stripped.endswith((".", ",", ";")) and (
                underline or (stripped.isupper() and len(stripped) > 2)
                or (after_blank and before_blank and stripped.endswith(":"))))
        if looks_like_heading:
            heading = stripped.rstrip(":")
            found.heading(2, _clean(heading.title() if stripped.isupper() else heading))
            continue
        found.buffer.append(line)
    found.flush()
    return Document(source, title, url, tuple(found.sections))


def load_html(source: str, raw: str) -> Document:
    soup = BeautifulSoup(raw, "html.parser")
    canonical = soup.find("link", rel="canonical")
    href = canonical.get("href") if isinstance(canonical, Tag) else None
    url = href if isinstance(href, str) else None  # html.parser keeps href a single string
    page_title = _clean(soup.title.get_text()) if soup.title else ""
    for tag in soup.find_all(HTML_BOILERPLATE):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed or tag.attrs is None:
            continue
        marks = " ".join([*tag.get_attribute_list("id"), *tag.get_attribute_list("class")])
        if marks.strip() and HTML_FURNITURE.search(marks):
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    found = _Sections(_join_html_blocks)
    blocks = ("p", "li", "td", "th", "dt", "dd", "pre", "blockquote", "figcaption")
    for element in root.find_all((*HTML_HEADINGS, *blocks, "tr")):
        if element.name in HTML_HEADINGS:
            found.heading(int(element.name[1]), _clean(element.get_text(" ")))
        elif element.name == "tr":
            cells = [_inline(c) for c in element.find_all(("td", "th"))]
            row = "| " + " | ".join(cells) + " |"
            header = all(c.name == "th" for c in element.find_all(("td", "th")))
            found.buffer.append(("row", row + ("\n|" + "---|" * len(cells) if header else "")))
        elif (element.find_parent(("li", "td", "th", "p")) is None
              and element.name not in ("td", "th")):
            text = _inline(element)
            if text:
                found.buffer.append(("block", f"- {text}" if element.name == "li" else text))
    found.flush()
    return Document(source, found.title or page_title or _title_from(source), url,
                    tuple(found.sections))


def _join_html_blocks(buffer: list[tuple[str, str]]) -> str:
    """Blank lines between blocks so chunking can cut between them; table rows stay together
    as one Markdown table (chunking splits those between rows)."""
    parts: list[str] = []
    for kind, text in buffer:
        if kind == "row" and parts and parts[-1].startswith("|"):
            parts[-1] += "\n" + text
        else:
            parts.append(text)
    return "\n\n".join(parts)


def load_pdf(source: str, data: bytes) -> Document:
    from pypdf import PdfReader  # imported here: only PDFs need it
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise UnsupportedDocument(
            f"{source}: not a readable PDF ({type(exc).__name__}: {exc})") from exc
    sections = tuple(Section((f"Page {n}",), text) for n, text in enumerate(pages, 1) if text)
    if not sections:
        raise UnsupportedDocument(f"{source}: the PDF has no extractable text (scanned images?)")
    first_line = sections[0].text.splitlines()[0].strip()
    title = _clean(meta_title) or (first_line if len(first_line) <= 100 else _title_from(source))
    return Document(source, title, None, sections)


FAQ_QUESTION = ("question", "q", "frage")
FAQ_ANSWER = ("answer", "a", "antwort")
ROW_TITLE = ("name", "title", "product", "product_name")
ROW_URL = ("url", "link", "product_url")
# A catalogue's title; knowledge.products recognises its rows' passages by it.
CATALOGUE_TITLE = "Product catalogue"


def load_csv(source: str, raw: str) -> Document:
    rows = list(csv.DictReader(io.StringIO(raw)))
    if not rows:
        raise UnsupportedDocument(f"{source}: the CSV has no rows")
    columns = {name.strip().lower(): name for name in rows[0] if name}
    question = next((columns[c] for c in FAQ_QUESTION if c in columns), None)
    answer = next((columns[c] for c in FAQ_ANSWER if c in columns), None)
    sections: list[Section] = []
    if question and answer:
        title = "Frequently asked questions"
        for row in rows:
            q, a = _clean(row.get(question) or ""), (row.get(answer) or "").strip()
            if q and a:
                sections.append(Section((q,), a))
    else:
        title = CATALOGUE_TITLE
        name_col = next((columns[c] for c in ROW_TITLE if c in columns), None)
        url_col = next((columns[c] for c in ROW_URL if c in columns), None)
        for n, row in enumerate(rows, 1):
            name = _clean(row.get(name_col) or "") if name_col else f"Row {n}"
            fields = [f"{_label(k)}: {_clean(v)}" for k, v in row.items()
                      if k and v and k not in (name_col, url_col)]
            url = _clean(row.get(url_col) or "") or None if url_col else None
            sections.append(Section((name or f"Row {n}",), "\n".join(fields), url))
    return Document(source, title, None, tuple(sections))


def _label(column: str) -> str:
    words = re.sub(r"[_\-]+", " ", column).strip()
    words = re.sub(r"\b(eur|usd|gbp)\b", lambda m: f"({m.group(1).upper()})", words, flags=re.I)
    return words[:1].upper() + words[1:]


def _title_from(source: str) -> str:
    return re.sub(r"[_\-]+", " ", Path(source).stem).strip().capitalize() or source


TEXT_LOADERS: dict[str, Callable[[str, str], Document]] = {
    ".md": load_markdown, ".markdown": load_markdown,
    ".txt": load_text, ".text": load_text,
    ".html": load_html, ".htm": load_html,
    ".csv": load_csv,
}
SUPPORTED = (*TEXT_LOADERS, ".pdf")


def load(source: str, data: bytes) -> Document:
    """Parse one file's bytes; `source` is the name it will be cited by."""
    suffix = Path(source).suffix.lower()
    if suffix == ".pdf":
        document = load_pdf(source, data)
    elif suffix in TEXT_LOADERS:
        try:
            raw = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raw = data.decode("cp1252", errors="replace")
        document = TEXT_LOADERS[suffix](source, raw)
    else:
        raise UnsupportedDocument(f"{source}: unsupported format (use {', '.join(SUPPORTED)})")
    if not document.sections:
        raise UnsupportedDocument(f"{source}: no text found")
    return document
