"""WhatsApp Cloud API notifications, validated at the edge and translated into our messages.

    {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
     "value": {"metadata": {"phone_number_id"}, "contacts", "messages" | "statuses"}}]}]}

The (already signature-checked) body becomes frozen dataclasses with every field checked (400
naming the field otherwise; 400 too for JSON nested past core/nesting.py's bound); each message
type is translated by one entry of `TRANSLATORS` into text, media and metadata; types we do not
handle are logged and acknowledged, so Meta does not retry them forever.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.errors import BadRequest
from connectors.messages import InboundMessage, Media, StatusUpdate
from core import nesting
from tenants import Tenant

log = logging.getLogger(__name__)

GRAPH_API_VERSION = "v21.0"  # used for media links here and for sends in sender.py
DEFAULT_GRAPH_BASE = "https://graph.facebook.com"
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
# What Meta reports on our sends; "deleted"/"warning" and future values are logged and skipped.
KNOWN_STATUSES = frozenset({"sent", "delivered", "read", "failed"})


# -- the payload, validated at the edge ------------------------------------------------------


@dataclass(frozen=True)
class WaMessage:
    sender: str  # "from": the visitor's number, digits only (E.164 without "+")
    id: str  # wamid.…
    timestamp: str | None
    type: str
    content: Mapping[str, Any]  # the object named by `type` ({"body": …}, {"id", "mime_type"}…)
    context_id: str | None = None  # the message this one replies to, when it does


@dataclass(frozen=True)
class WaError:
    code: str | None
    title: str | None
    message: str | None


@dataclass(frozen=True)
class WaStatus:
    id: str
    status: str
    timestamp: str | None
    recipient_id: str | None
    errors: tuple[WaError, ...] = ()


@dataclass(frozen=True)
class WaChange:
    field: str
    phone_number_id: str | None
    display_phone_number: str | None = None
    # wa_id -> profile name
    profile_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    messages: tuple[WaMessage, ...] = ()
    statuses: tuple[WaStatus, ...] = ()


@dataclass(frozen=True)
class WaNotification:
    changes: tuple[WaChange, ...]


def _obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"'{where}' must be a JSON object.")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"'{where}' must be a JSON array.")
    return value


def _str(value: Any, where: str, *, required: bool = False) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # ids and timestamps are strings on the wire; tolerate numbers
    if isinstance(value, str) and value:
        return value
    if required or value is not None:
        raise BadRequest(f"'{where}' must be a non-empty string.")
    return None


def _req(value: Any, where: str) -> str:
    text = _str(value, where, required=True)
    assert text is not None  # _str raised otherwise; this narrows the type
    return text


def _parse_message(raw: Any, where: str) -> WaMessage:
    msg = _obj(raw, where)
    kind = _req(msg.get("type"), f"{where}.type")
    content = msg.get(kind)
    context = msg.get("context")
    return WaMessage(
        sender=_req(msg.get("from"), f"{where}.from"),
        id=_req(msg.get("id"), f"{where}.id"),
        timestamp=_str(msg.get("timestamp"), f"{where}.timestamp"),
        type=kind,
        content=content if isinstance(content, dict) else {},
        context_id=context.get("id") if isinstance(context, dict) else None,
    )


def _parse_status(raw: Any, where: str) -> WaStatus:
    status = _obj(raw, where)
    errors = []
    for i, err in enumerate(_list(status.get("errors"), f"{where}.errors")):
        err = _obj(err, f"{where}.errors[{i}]")
        errors.append(WaError(
            code=_str(err.get("code"), f"{where}.errors[{i}].code"),
            title=err.get("title") if isinstance(err.get("title"), str) else None,
            message=err.get("message") if isinstance(err.get("message"), str) else None,
        ))
    return WaStatus(
        id=_req(status.get("id"), f"{where}.id"),
        status=_req(status.get("status"), f"{where}.status"),
        timestamp=_str(status.get("timestamp"), f"{where}.timestamp"),
        recipient_id=_str(status.get("recipient_id"), f"{where}.recipient_id"),
        errors=tuple(errors),
    )


def _parse_change(raw: Any, where: str) -> WaChange:
    change = _obj(raw, where)
    name = _req(change.get("field"), f"{where}.field")
    value = _obj(change.get("value"), f"{where}.value")
    if name != "messages":  # template/account updates: nothing for the bot, keep them opaque
        return WaChange(field=name, phone_number_id=None)
    metadata = _obj(value.get("metadata"), f"{where}.value.metadata")
    names: dict[str, str] = {}
    for i, contact in enumerate(_list(value.get("contacts"), f"{where}.value.contacts")):
        contact = _obj(contact, f"{where}.value.contacts[{i}]")
        profile = contact.get("profile")
        wa_id = contact.get("wa_id")
        profile_name = profile.get("name") if isinstance(profile, dict) else None
        if isinstance(wa_id, str) and isinstance(profile_name, str):
            names[wa_id] = profile_name
    messages = _list(value.get("messages"), f"{where}.value.messages")
    statuses = _list(value.get("statuses"), f"{where}.value.statuses")
    return WaChange(
        field=name,
        phone_number_id=_req(metadata.get("phone_number_id"),
                             f"{where}.value.metadata.phone_number_id"),
        display_phone_number=_str(metadata.get("display_phone_number"),
                                  f"{where}.value.metadata.display_phone_number"),
        profile_names=names,
        messages=tuple(_parse_message(m, f"{where}.value.messages[{i}]")
                       for i, m in enumerate(messages)),
        statuses=tuple(_parse_status(s, f"{where}.value.statuses[{i}]")
                       for i, s in enumerate(statuses)),
    )


def parse_notification(body: bytes) -> WaNotification:
    """Validate the (already signature-checked) body; 400 with a reason otherwise."""
    try:
        payload = nesting.loads(body or b"")
    except nesting.TooDeep:  # RecursionError in json, or later in str() of a location name
        raise BadRequest(f"Body must be JSON nested at most {nesting.MAX_DEPTH} levels "
                         "deep.") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Body must be a WhatsApp Cloud API JSON notification.") from None
    payload = _obj(payload, "body")
    if payload.get("object") != "whatsapp_business_account":
        raise BadRequest("'object' must be 'whatsapp_business_account'.")
    changes: list[WaChange] = []
    for e, entry in enumerate(_list(payload.get("entry"), "entry")):
        entry = _obj(entry, f"entry[{e}]")
        for c, change in enumerate(_list(entry.get("changes"), f"entry[{e}].changes")):
            changes.append(_parse_change(change, f"entry[{e}].changes[{c}]"))
    return WaNotification(changes=tuple(changes))


# -- message types -> text, media, metadata ---------------------------------------------------


@dataclass(frozen=True)
class Content:
    text: str
    media: tuple[Media, ...] = ()
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


Translator = Callable[[WaMessage, str], Content]


def _text(msg: WaMessage, graph_base: str) -> Content:
    return Content(str(msg.content.get("body") or ""))


def _button(msg: WaMessage, graph_base: str) -> Content:
    # A template's quick-reply button: the text the visitor tapped, plus the payload we set.
    payload = msg.content.get("payload")
    return Content(str(msg.content.get("text") or ""),
                   metadata={"button_payload": payload} if payload else {})


def _interactive(msg: WaMessage, graph_base: str) -> Content:
    kind = msg.content.get("type")
    reply = msg.content.get(kind) if isinstance(kind, str) else None
    if kind not in ("button_reply", "list_reply") or not isinstance(reply, dict):
        return Content("", metadata={"interactive_type": kind})
    # The title is what the visitor saw and tapped; pick_choice matches it by title.
    return Content(str(reply.get("title") or ""),
                   metadata={"interactive_type": kind, "reply_id": reply.get("id")})


def media_url(graph_base: str, media_id: str) -> str:
    """The Graph object of an uploaded media (GET with the access token gives its download URL)."""
    return f"{graph_base.rstrip('/')}/{GRAPH_API_VERSION}/{media_id}"


def _media(msg: WaMessage, graph_base: str) -> Content:
    media_id = msg.content.get("id")
    meta: dict[str, Any] = {"media_type": msg.type}
    if not isinstance(media_id, str) or not media_id:
        return Content(str(msg.content.get("caption") or ""), metadata=meta)
    meta["media_ids"] = [media_id]
    if isinstance(msg.content.get("filename"), str):
        meta["filename"] = msg.content["filename"]
    mime = msg.content.get("mime_type")
    return Content(
        str(msg.content.get("caption") or ""),
        media=(Media(url=media_url(graph_base, media_id),
                     content_type=mime if isinstance(mime, str) else None),),
        metadata=meta,
    )


def _location(msg: WaMessage, graph_base: str) -> Content:
    lat, lon = msg.content.get("latitude"), msg.content.get("longitude")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lat, lon)):
        return Content("")
    name = msg.content.get("name") or msg.content.get("address") or ""
    text = f"[location] {lat},{lon} {name}".strip()
    return Content(text, metadata={"location": {"latitude": lat, "longitude": lon}})


TRANSLATORS: dict[str, Translator] = {
    "text": _text,
    "button": _button,
    "interactive": _interactive,
    "location": _location,
    **{kind: _media for kind in MEDIA_TYPES},
}
# reaction, unsupported, system, contacts, order, ephemeral and types Meta adds later are not in
# the table: they are logged and acknowledged, so Meta does not retry them forever.


def to_inbound(tenant: Tenant, provider: str, change: WaChange, msg: WaMessage,
               graph_base: str) -> InboundMessage | None:
    translate = TRANSLATORS.get(msg.type)
    if translate is None:
        log.info("whatsapp message type ignored",
                 extra={"tenant": tenant.slug, "type": msg.type, "wamid": msg.id})
        return None
    content = translate(msg, graph_base)
    if not content.text and not content.media:
        log.info("whatsapp message without text or media ignored",
                 extra={"tenant": tenant.slug, "type": msg.type, "wamid": msg.id})
        return None
    metadata: dict[str, Any] = {"whatsapp_type": msg.type, **content.metadata}
    if msg.timestamp:
        metadata["timestamp"] = msg.timestamp
    if change.profile_names.get(msg.sender):
        metadata["profile_name"] = change.profile_names[msg.sender]
    if msg.context_id:
        metadata["context_message_id"] = msg.context_id
    digits = msg.sender.lstrip("+")
    return InboundMessage(
        tenant=tenant,
        provider=provider,
        channel="whatsapp",
        user_key=f"+{digits}",  # E.164, the same key a Twilio WhatsApp visitor gets
        text=content.text,
        message_id=msg.id,
        client_metadata=metadata,
        media=content.media,
        reply_context={"phone_number_id": change.phone_number_id or "", "wa_id": digits},
    )


def to_status_update(status: WaStatus) -> StatusUpdate:
    first = status.errors[0] if status.errors else None
    return StatusUpdate(
        provider_message_id=status.id,
        status=status.status,
        error_code=first.code if first else None,
        error_detail=(first.title or first.message) if first else None,
    )
