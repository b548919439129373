"""Inbound email as Mailgun and SendGrid deliver it, decoded into one `ParsedEmail`.

Parsing uses the stdlib `email` package: the visitor is the From address (lower-cased; the
envelope sender is only a fallback because it is often a bounce/VERP address). The dedupe id
is the Message-ID header; a mail without one gets a stable synthetic id (a hash of From, Date,
Subject and body, "<sha256…@switchboard.invalid>") so provider retries still dedupe, instead of
a 400 that Mailgun and SendGrid would retry for hours. The text is the plain part, else the
HTML part flattened (stripping quoted history is the caller's step).

The From header is whatever the sender typed, so `ParsedEmail.authenticated` records whether
the provider vouched for it, and only then does the bot talk about orders by email
(actions/verification.py). What counts, read only from what the provider itself adds:
- a DMARC pass for the From domain in the newest Authentication-Results or
  ARC-Authentication-Results header that the provider's own servers wrote (authserv-id under
  TRUSTED_AUTHSERV); a sender's own A-R headers sit below it and are not read;
- or SPF and DKIM both passing and aligned with the From domain: Mailgun's X-Mailgun-Spf and
  X-Mailgun-Dkim-Check-Result headers (with the envelope sender and a DKIM-Signature d= of the
  From domain), SendGrid's `SPF` and `dkim` fields (`{@domain : pass}`, with the envelope's
  from). A verdict header that appears twice with different values (a sender adding its own
  "Pass") counts as a failure.
"""

from __future__ import annotations

import hashlib
import re
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
from core import nesting


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
    # The provider reported the From domain passed DMARC, or SPF and DKIM aligned with it.
    authenticated: bool = False



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
    """A JSON field of the provider's form; `fallback` when it is absent or unreadable (also
    when nested past core/nesting.py's bound: once a RecursionError, a 500 retried for hours)."""
    if not value:
        return fallback
    try:
        return nesting.loads(value)
    except ValueError:
        return fallback


# --- did the provider vouch for the sender? -------------------------------------------------

# authserv-ids of the providers' receiving servers (RFC 8601), by provider.
TRUSTED_AUTHSERV = {"mailgun": ("mailgun.org", "mailgun.net"), "sendgrid": ("sendgrid.net",)}
_AUTH_RESULTS = ("authentication-results", "arc-authentication-results")
_ARC_INSTANCE = re.compile(r"^\s*i\s*=\s*(\d+)\s*$")
_DKIM_DOMAIN = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)", re.IGNORECASE)
_SENDGRID_DKIM = re.compile(r"@([^\s:,{}]+)\s*:\s*(\w+)")


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(">").lower().rstrip(".")


def aligned(domain: str, from_domain: str) -> bool:
    """DMARC's relaxed alignment, conservatively: the same domain, or one a subdomain of the
    other (sibling subdomains, which share an organisational domain, are not accepted)."""
    if not domain or not from_domain or "." not in domain or "." not in from_domain:
        return False
    return (domain == from_domain or domain.endswith("." + from_domain)
            or from_domain.endswith("." + domain))


def _dmarc_passed(value: str, from_domain: str, provider: str) -> bool | None:
    """One (ARC-)Authentication-Results value: None unless the provider wrote it, else
    whether it says DMARC passed for the From domain."""
    parts = [p.strip() for p in value.split(";")]
    if parts and _ARC_INSTANCE.match(parts[0]):  # ARC-A-R: "i=1; authserv-id; ..."
        parts = parts[1:]
    if not parts:
        return None
    authserv = parts[0].split()[0].lower() if parts[0].split() else ""
    if not any(authserv == t or authserv.endswith("." + t) for t in TRUSTED_AUTHSERV[provider]):
        return None
    for result in parts[1:]:
        words = result.split()
        if not words or not words[0].lower().startswith("dmarc="):
            continue
        if words[0].lower() != "dmarc=pass":
            return False
        said = [w.split("=", 1)[1].lower() for w in words[1:]
                if w.lower().startswith("header.from=")]
        return bool(said) and all(aligned(d.strip('"'), from_domain) for d in said)
    return False


def _newest_provider_verdict(pairs: list[tuple[str, str]], from_domain: str,
                             provider: str) -> bool | None:
    """The DMARC verdict of the newest A-R / ARC-A-R header the provider wrote (headers are
    listed newest first, as each hop prepends its own)."""
    for name, value in pairs:
        if name in _AUTH_RESULTS:
            verdict = _dmarc_passed(value, from_domain, provider)
            if verdict is not None:
                return verdict
    return None


def _one_value(pairs: list[tuple[str, str]], name: str) -> str:
    """A verdict header's value, lower-cased; "" when absent or present with different values
    (a sender cannot add a "Pass" of its own next to the provider's "Fail")."""
    values = {v.strip().lower() for n, v in pairs if n == name}
    return values.pop() if len(values) == 1 else ""


def mailgun_authenticated(pairs: list[tuple[str, str]], sender: str, envelope: str) -> bool:
    from_domain = _domain(sender)
    verdict = _newest_provider_verdict(pairs, from_domain, "mailgun")
    if verdict is not None:
        return verdict
    signed_by = {m.group(1).lower().rstrip(".") for n, v in pairs if n == "dkim-signature"
                 for m in [_DKIM_DOMAIN.search(v)] if m}
    return (_one_value(pairs, "x-mailgun-spf") == "pass"
            and _one_value(pairs, "x-mailgun-dkim-check-result") == "pass"
            and aligned(_domain(envelope), from_domain)
            and any(aligned(d, from_domain) for d in signed_by))


def sendgrid_authenticated(pairs: list[tuple[str, str]], sender: str, envelope: str,
                           spf: str, dkim: str) -> bool:
    from_domain = _domain(sender)
    verdict = _newest_provider_verdict(pairs, from_domain, "sendgrid")
    if verdict is not None:
        return verdict
    passed = {d.lower().rstrip(".") for d, result in _SENDGRID_DKIM.findall(dkim)
              if result.lower() == "pass"}
    return (spf.strip().lower() == "pass" and aligned(_domain(envelope), from_domain)
            and any(aligned(d, from_domain) for d in passed))


def _header_pairs(raw: Any) -> list[tuple[str, str]]:
    """Mailgun's message-headers ([[name, value], ...]) with lower-cased names, in order."""
    if not isinstance(raw, list):
        return []
    return [(str(p[0]).lower(), str(p[1])) for p in raw
            if isinstance(p, (list, tuple)) and len(p) == 2]


def _message_pairs(message: Message) -> list[tuple[str, str]]:
    return [(name.lower(), str(value)) for name, value in message.items()]


# --- Mailgun ---------------------------------------------------------------------------------


def parse_mailgun(form: Mapping[str, str], files: Mapping[str, tuple[str, str]]) -> ParsedEmail:
    """Mailgun's forward() fields → ParsedEmail. `files`: field name → (filename, type)."""
    raw_headers = _loads(form.get("message-headers"), [])
    headers = _headers_from_pairs(raw_headers)

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
        authenticated=mailgun_authenticated(_header_pairs(raw_headers), sender,
                                            _address(form.get("sender", "")) or sender),
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
        pairs = _message_pairs(mime)
        plain, html, media = _mime_parts(mime)
    else:
        parsed_headers = HeaderParser(policy=default).parsestr(field_text("headers"))
        headers = _headers_from_message(parsed_headers)
        pairs = _message_pairs(parsed_headers)
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
        authenticated=sendgrid_authenticated(
            pairs, sender,
            _address(str(envelope_json.get("from", ""))) if isinstance(envelope_json, dict)
            else "", field_text("SPF"), field_text("dkim")),
    )
