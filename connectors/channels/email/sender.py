"""Email channel, outbound: one threaded reply over SMTP for all the replies to one email.

The reply carries In-Reply-To (the visitor's Message-ID) and References (their chain plus that
id), so mail clients keep it in the thread; our own Message-ID is returned for the outbox to
record and match later replies. A text/plain part and a text/html alternative: when the visitor
asked several questions, the answers follow in their order under "Your question 1 of 3";
buttons become a numbered list the visitor can answer with; a product under a knowledge answer
becomes a card in the HTML part (picture, name, price, facts, a "View product" link) and its
link in the text part.

Nothing the visitor wrote is sent back beyond what threading needs: anyone can put someone
else's address in From, and a reply that quoted the mail's text (or carried its subject as
written) would let the shop's own server deliver an attacker's words to that person. So the
questions are never quoted, and the subject is "Re: " + the original cut to SUBJECT_WORDS and
SUBJECT_CHARS, without links, addresses or control characters.

One attempt per call; the outbox retries TransientSendError. Error mapping:
connection refused/dropped, timeouts and SMTP 4xx → TransientSendError; SMTP 5xx (550 recipient
refused, 535 authentication failed, ...) → PermanentSendError(code="550").

The SMTP server is the shop's to name, so the connection is made the way core/destinations.py
says: its host's addresses are checked when connecting and the SMTP client gets a socket to one
just checked (TLS still verifies the host's name). A host that resolves to a private address
is a PermanentSendError that says so, unless ALLOW_PRIVATE_DESTINATIONS (development, tests).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

import aiosmtplib

from connectors.outbound import OutboundContext, PermanentSendError, Reply, TransientSendError
from connectors.rendering import ProductCard, message_text, product_cards
from core.destinations import Destinations, PrivateDestination

log = logging.getLogger(__name__)

_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|r|fwd?|wg)\s*:\s*", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
MAX_REFERENCES = 20
# The original subject, as far as a reply repeats it: enough to recognise the thread.
SUBJECT_WORDS = 8
SUBJECT_CHARS = 60
# Links (with or without a scheme), email addresses and control or format characters.
_SUBJECT_DROP = re.compile(
    r"(\b[a-z][a-z0-9+.-]*://\S*|\bwww\.\S*|\S*@\S*|\S+\.(com|net|org|io|co|info|biz|ru|xyz)"
    r"(/\S*)?\b|[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069])", re.IGNORECASE)


def reply_subject(subject: str, fallback: str) -> str:
    """"Re: " + the visitor's subject, bounded and without links or addresses ("Re: " + the
    shop's name when nothing is left)."""
    subject = " ".join(_SUBJECT_DROP.sub(" ", subject or "").split())
    while _REPLY_PREFIX.match(subject):
        subject = _REPLY_PREFIX.sub("", subject, count=1)
    words = subject.split()
    subject = " ".join(words[:SUBJECT_WORDS])
    if len(subject) > SUBJECT_CHARS:
        subject = subject[:SUBJECT_CHARS].rsplit(" ", 1)[0].rstrip(" ,.;:-") + "…"
    elif len(words) > SUBJECT_WORDS:
        subject = subject.rstrip(" ,.;:-") + "…"
    return f"Re: {subject or fallback}"


def references_chain(references: str, parent: str) -> str:
    """The parent's References plus the parent id; long chains keep the first and the last."""
    ids = references.split()
    if parent and (not ids or ids[-1] != parent):
        ids.append(parent)
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1):]
    return " ".join(ids)


# --- rendering -------------------------------------------------------------------------------


def _linkify(escaped: str) -> str:
    return _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


def _html_paragraphs(text: str) -> str:
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    return "".join(
        f"<p>{_linkify(html.escape(b.strip())).replace(chr(10), '<br>')}</p>" for b in blocks
    )


def _card_html(card: ProductCard) -> str:
    """A product as a table, the layout mail clients agree on; every value escaped, links and
    pictures only http(s) (rendering.product_cards checked them)."""
    name = html.escape(card.name)
    picture = ""
    if card.image:
        image = f'<img src="{html.escape(card.image, quote=True)}" alt="{name}" width="96" ' \
                'style="display:block;border:0;border-radius:4px">'
        if card.url:
            image = f'<a href="{html.escape(card.url, quote=True)}">{image}</a>'
        picture = f'<td style="padding:8px;width:96px;vertical-align:top">{image}</td>'
    lines = [f"<strong>{name}</strong>"]
    if card.price:
        lines.append(html.escape(card.price))
    lines.extend(f'<span style="color:#555">{html.escape(fact)}</span>' for fact in card.facts)
    if card.url:
        lines.append(f'<a href="{html.escape(card.url, quote=True)}">View product</a>')
    return ('<table role="presentation" cellpadding="0" cellspacing="0" style="border:1px solid'
            ' #ddd;border-radius:6px;margin:8px 0;max-width:480px"><tr>'
            f'{picture}<td style="padding:8px 12px;vertical-align:top">{"<br>".join(lines)}'
            '</td></tr></table>')


def _message_html(message: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if message.get("text"):
        parts.append(_html_paragraphs(str(message["text"])))
    buttons = message.get("buttons") or []
    if buttons:
        items = "".join(f"<li>{html.escape(str(b.get('title', '')))}</li>" for b in buttons)
        parts.append(f"<ol>{items}</ol><p>Reply with a number.</p>")
    for key in ("image", "attachment"):
        url = message.get(key)
        if isinstance(url, str) and url:
            safe = html.escape(url, quote=True)
            parts.append(f'<p><a href="{safe}">{safe}</a></p>')
    parts.extend(_card_html(card) for card in product_cards(dict(message)))
    return "".join(parts)


def _heading(index: int, replies: Sequence[Reply]) -> str:
    """Names the question an answer is for by its place, never by its words."""
    return f"Your question {index + 1} of {len(replies)}:" if len(replies) > 1 else ""


def render_text(replies: Sequence[Reply]) -> str:
    sections: list[str] = []
    for index, reply in enumerate(replies):
        body = "\n\n".join(t for t in (message_text(m) for m in reply.messages) if t)
        if not body:
            continue
        heading = _heading(index, replies)
        sections.append(f"{heading}\n{body}" if heading else body)
    return "\n\n".join(sections)


def render_html(replies: Sequence[Reply]) -> str:
    sections: list[str] = []
    for index, reply in enumerate(replies):
        body = "".join(_message_html(m) for m in reply.messages)
        if not body:
            continue
        heading = _heading(index, replies)
        if heading:
            body = f'<p style="margin:0 0 4px;color:#555"><strong>{heading}</strong></p>{body}'
        sections.append(f"<div>{body}</div>")
    inner = "<hr>".join(sections)
    return f'<!DOCTYPE html><html><body style="font-family:sans-serif">{inner}</body></html>'


# --- sending ---------------------------------------------------------------------------------


class SmtpSender:
    """Renders to one EmailMessage (text and HTML parts) for all the replies to one email."""

    def __init__(self, destinations: Destinations | None = None,
                 timeout: float = 15.0) -> None:
        self.destinations = destinations or Destinations()  # public SMTP servers only
        self.timeout = timeout

    def build(self, context: OutboundContext, replies: Sequence[Reply]) -> EmailMessage | None:
        """The reply as an EmailMessage, or None when the replies hold nothing to send."""
        text = render_text(replies)
        if not text.strip():
            return None
        credentials = context.credentials
        address = str(credentials["address"])
        reply = context.reply_context
        parent = str(reply.get("message_id") or "")
        message = EmailMessage()
        message["From"] = formataddr((credentials.get("from_name") or context.tenant.name, address))
        message["To"] = context.to
        message["Subject"] = reply_subject(str(reply.get("subject") or ""), context.tenant.name)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
        if parent:
            message["In-Reply-To"] = parent
            message["References"] = references_chain(str(reply.get("references") or ""), parent)
        # RFC 3834: tells the visitor's auto-responders (out of office) not to answer a bot.
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
        message.set_content(text)
        message.add_alternative(render_html(replies), subtype="html")
        return message

    def render(self, context: OutboundContext, replies: Sequence[Reply]) -> list[EmailMessage]:
        message = self.build(context, replies)
        return [] if message is None else [message]

    async def deliver(self, context: OutboundContext, message: EmailMessage) -> str:
        smtp = context.credentials.get("smtp") or {}
        if not smtp.get("host"):
            raise PermanentSendError("No SMTP server configured for this shop.")
        starttls = smtp.get("starttls")
        try:  # checked when the credentials are saved (credentials.py); older ones were not
            port = int(smtp.get("port") or 587)
        except (TypeError, ValueError):
            raise PermanentSendError("The shop's SMTP port is not a number.") from None
        host = str(smtp["host"])
        try:
            sock = await self.destinations.connect(host, port, self.timeout)
        except PrivateDestination:
            raise PermanentSendError("The shop's SMTP server is at a private network address; "
                                     "it must be reachable at a public one.") from None
        except OSError as exc:  # includes TimeoutError
            raise TransientSendError(f"SMTP server unreachable: {type(exc).__name__}.") from None
        try:
            await aiosmtplib.send(
                message,
                hostname=host,  # for TLS: the certificate names the host, not its address
                sock=sock,
                username=smtp.get("username") or None,
                password=smtp.get("password") or None,
                start_tls=None if starttls is None else bool(starttls),
                use_tls=bool(smtp.get("ssl", False)),
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients] or [550]
            raise _by_code(min(codes), "The recipient was refused.") from None
        except aiosmtplib.SMTPResponseException as exc:
            # Includes authentication failures (535) and refused senders.
            raise _by_code(exc.code, f"SMTP server answered {exc.code}.") from None
        except aiosmtplib.SMTPNotSupported:
            raise PermanentSendError(
                "The SMTP server lacks a required feature (STARTTLS/AUTH)."
            ) from None
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise TransientSendError(f"SMTP server unreachable: {type(exc).__name__}.") from None
        finally:
            sock.close()  # the SMTP client closed it already when it got that far
        message_id = str(message["Message-ID"])
        log.info("email sent", extra={"tenant": context.tenant.slug, "message_id": message_id})
        return message_id


def _by_code(code: int, detail: str) -> TransientSendError | PermanentSendError:
    if 400 <= code < 500:
        return TransientSendError(detail, code=str(code))
    return PermanentSendError(detail, code=str(code))
