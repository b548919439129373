"""Inbound email as Mailgun and SendGrid deliver it, decoded into one `ParsedEmail`.

Parsing uses the stdlib `email` package: the visitor is the From address (lower-cased; the
envelope sender is only a fallback because it is often a bounce/VERP address). The dedupe id
is the Message-ID header; a mail without one gets a stable synthetic id (a hash of From, Date,
Subject and body, "<sha256…@switchboard.invalid>") so provider retries still dedupe, instead of
a 400 that Mailgun and SendGrid would retry for hours. The text is the plain part, else the
HTML part flattened (stripping quoted history is the caller's step).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32, default
from email.utils import getaddresses, parseaddr
from typing import Any

from connectors.channels.email.text import html_to_text
from connectors.errors import BadRequest
from connectors.messages import Media


@dataclass(frozen=True)
class ParsedEmail:
    """An inbound email as the provider delivered it, validated and decoded."""

    sender: str  # lower-cased address of the visitor
    recipients: tuple[str, ...]  # lower-cased addresses the mail was delivered to
    subject: str
    message_id: str
    references: str
    text: str  # plain part, or the HTML part flattened; not yet stripped
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased names, first value
    media: tuple[Media, ...] = ()



# --- parsing helpers -------------------------------------------------------------------------


def _decode_words(value: str) -> str:
    """RFC 2047 encoded-words ("=?UTF-8?B?...?=") to text; plain text unchanged."""
    if not value:
        return ""
    try:
        return str(make_header(decode_header(value))).strip()
    except (UnicodeDecodeError, LookupError, ValueError):
        return value.strip()


def _address(value: str) -> str:
    return parseaddr(_decode_words(value))[1].strip().lower()


def _addresses(*values: str) -> tuple[str, ...]:
    found = [addr.strip().lower() for _, addr in getaddresses([v for v in values if v])]
    return tuple(a for a in found if "@" in a)


def _angle(message_id: str) -> str:
    value = " ".join(message_id.split())
    if not value:
        return ""
    return value if value.startswith("<") else f"<{value.strip('<>')}>"


def _synthetic_id(sender: str, headers: Mapping[str, str], subject: str, text: str) -> str:
    digest = hashlib.sha256(
        "\x1f".join((sender, headers.get("date", ""), subject, text)).encode()
    ).hexdigest()[:40]
    return f"<{digest}@switchboard.invalid>"


def _headers_from_pairs(pairs: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(pairs, list):
        for pair in pairs:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                headers.setdefault(str(pair[0]).lower(), str(pair[1]))
    return headers


def _headers_from_message(message: Message) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in message.items():
        headers.setdefault(name.lower(), str(value))
    return headers


def _mime_parts(message: Message) -> tuple[str, str, tuple[Media, ...]]:
    """Plain text, HTML and attachments of a full MIME message (SendGrid raw mode)."""
    plain, html, media = "", "", []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        disposition = (part.get_content_disposition() or "").lower()
        content_type = part.get_content_type()
        if filename or disposition == "attachment":
            media.append(Media(f"attachment:{filename or 'unnamed'}", content_type))
            continue
        payload = _decoded_payload(part)
        charset = part.get_content_charset() or "utf-8"
        try:
            decoded = payload.decode(charset, errors="replace")
        except LookupError:
            decoded = payload.decode("utf-8", errors="replace")
        if content_type == "text/plain" and not plain:
            plain = decoded
        elif content_type == "text/html" and not html:
            html = decoded
    return plain, html, tuple(media)


def _decoded_payload(part: Message) -> bytes:
    """A non-multipart part's body with its transfer encoding undone (b"" when none)."""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _loads(value: str | None, fallback: Any) -> Any:
    if not value:
        return fallback
    try:
        return json.loads(value)
    except ValueError:
        return fallback


# --- Mailgun ---------------------------------------------------------------------------------


def parse_mailgun(form: Mapping[str, str], files: Mapping[str, tuple[str, str]]) -> ParsedEmail:
    """Mailgun's forward() fields → ParsedEmail. `files`: field name → (filename, type)."""
    headers = _headers_from_pairs(_loads(form.get("message-headers"), []))

    def header(name: str) -> str:
        return headers.get(name.lower()) or form.get(name) or form.get(name.title()) or ""

    sender = _address(form.get("from") or header("From")) or _address(form.get("sender", ""))
    if not sender:
        raise BadRequest("The email has no sender address.")
    subject = _decode_words(form.get("subject") or header("Subject"))
    text = form.get("body-plain") or ""
    if not text.strip() and form.get("body-html"):
        text = html_to_text(form["body-html"])
    media: list[Media] = []
    for item in _loads(form.get("attachments"), []) or []:  # store(notify) posts URLs
        if isinstance(item, dict) and item.get("url"):
            media.append(Media(str(item["url"]), item.get("content-type")))
    try:
        count = int(form.get("attachment-count") or 0)
    except ValueError:
        count = 0
    for index in range(1, count + 1):
        name, content_type = files.get(f"attachment-{index}", (f"attachment-{index}", None))
        media.append(Media(f"attachment:{name}", content_type))
    message_id = _angle(header("Message-Id")) or _synthetic_id(sender, headers, subject, text)
    return ParsedEmail(
        sender=sender,
        recipients=_addresses(form.get("recipient", "")),
        subject=subject,
        message_id=message_id,
        references=" ".join((header("References") or header("In-Reply-To")).split()),
        text=text,
        headers=headers,
        media=tuple(media),
    )


def parse_sendgrid(body: bytes, content_type: str) -> ParsedEmail:
    """SendGrid Inbound Parse multipart body → ParsedEmail (default and raw "send_raw" modes).

    Parsed with the stdlib so each field is decoded with the charset SendGrid names in
    `charsets` (fields keep the mail's original encoding)."""
    if "multipart/form-data" not in content_type.lower():
        raise BadRequest("SendGrid Inbound Parse posts multipart/form-data.")
    envelope = message_from_bytes(
        b"Content-Type: " + content_type.encode("latin-1", errors="replace")
        + b"\r\nMIME-Version: 1.0\r\n\r\n" + body,
        policy=compat32,
    )
    if not envelope.is_multipart():
        raise BadRequest("Unreadable multipart body.")
    raw_fields: dict[str, bytes] = {}
    files: dict[str, tuple[str, str]] = {}
    for part in envelope.get_payload():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        name = str(name)
        payload = _decoded_payload(part)
        filename = part.get_filename()
        if filename:
            files[name] = (filename, part.get_content_type())
        else:
            raw_fields[name] = payload
    charsets = _loads(raw_fields.get("charsets", b"").decode("utf-8", "replace"), {}) or {}

    def field_text(name: str) -> str:
        data = raw_fields.get(name, b"")
        charset = charsets.get(name) if isinstance(charsets, dict) else None
        try:
            return data.decode(charset or "utf-8", errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")

    envelope_json = _loads(field_text("envelope"), {}) or {}
    if "email" in raw_fields:  # raw mode: the whole MIME message in one field
        mime = message_from_bytes(raw_fields["email"], policy=default)
        headers = _headers_from_message(mime)
        plain, html, media = _mime_parts(mime)
    else:
        parsed_headers = HeaderParser(policy=default).parsestr(field_text("headers"))
        headers = _headers_from_message(parsed_headers)
        plain, html = field_text("text"), field_text("html")
        info = _loads(field_text("attachment-info"), {}) or {}
        media_list: list[Media] = []
        for name, (filename, ctype) in sorted(files.items()):
            meta = info.get(name, {}) if isinstance(info, dict) else {}
            media_list.append(Media(f"attachment:{meta.get('filename') or filename}",
                                    meta.get("type") or ctype))
        media = tuple(media_list)
    text = plain if plain.strip() else html_to_text(html)
    sender = _address(field_text("from") or headers.get("from", "")) or _address(
        str(envelope_json.get("from", "")) if isinstance(envelope_json, dict) else ""
    )
    if not sender:
        raise BadRequest("The email has no sender address.")
    to = envelope_json.get("to") if isinstance(envelope_json, dict) else None
    recipients = _addresses(*to) if isinstance(to, list) else ()
    if not recipients:
        recipients = _addresses(field_text("to"), field_text("cc"))
    subject = _decode_words(field_text("subject") or headers.get("subject", ""))
    message_id = _angle(headers.get("message-id", "")) or _synthetic_id(
        sender, headers, subject, text
    )
    return ParsedEmail(
        sender=sender,
        recipients=recipients,
        subject=subject,
        message_id=message_id,
        references=" ".join(
            (headers.get("references") or headers.get("in-reply-to") or "").split()
        ),
        text=text,
        headers=headers,
        media=media,
    )
