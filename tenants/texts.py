"""A shop's own versions of what the bot says: overrides of the domain's `utter_*` responses.

Rasa renders responses through our NLG endpoint (admin_api/nlg.py, asked by bot/nlg.py), which
lays a shop's overrides over the domain's defaults; deleting an override restores the default.
No retraining is involved: the texts are data, the model only picks the response's name.

Why the rendering is ours and not Rasa's, yet renders as Rasa does: Rasa 3.6's
`TemplatedNaturalLanguageGenerator` (rasa/core/nlg/response.py, generator.py, interpolator.py)
is copied in behaviour here (the admin process never imports Rasa): conditional variants that
match the filled slots first, then the channel's own variants, then the channel-less ones; one
chosen at random; `{name}` filled from the slots and the arguments an action passed, a missing
name left as written, `{{` an escaped brace. The channel a variant is for is one of *our*
channels (web, sms, whatsapp, email, rest: core/metrics.CHANNELS), read from the sender id:
every turn reaches Rasa over its REST channel, whose own name ("collector") says nothing.

A template is checked before it is stored (`validate`): each `{placeholder}` must be a domain
slot or an argument our actions pass for that response (`ARGUMENTS`, kept complete by a test
that reads actions/*.py), and the text must format without error, so a typo is a 422 for the
designer instead of a visitor reading "{ordr_number}".

Two departures from Rasa, both for the visitor reading the message: a slot that holds nothing
fills its placeholder with nothing (Rasa writes "None"), and the slots the bot keeps for itself
(`INTERNAL_SLOTS`: the shop's id, when and how often verification ran, whether a person was
offered) are no placeholders a designer's text may use.

Overrides are read per shop through `OverrideCache`: a write clears the writing process's
entry at once; other processes (more admin replicas) re-read a shop after `ttl` seconds (1 s),
one read per shop and second at most, shared by concurrent requests. A setting can stand for a
response's default in one shop (SETTING_DEFAULTS: the greeting is the shop's `utter_greet`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UtcDateTime, utcnow
from core.metrics import CHANNELS
from core.settings import ROOT
from tenants.models import TenantRow

log = logging.getLogger(__name__)

DOMAIN_DIR = ROOT / "bot" / "domain"
MAX_VARIANTS = 20

# Slots the bot keeps for its own bookkeeping: nothing a visitor should read in a message.
INTERNAL_SLOTS = frozenset({
    "tenant_id", "verified_at", "verified_order", "verification_failures", "misunderstood_turns",
    "handoff_offered", "handoff_requested", "flow_stop_reason", "requested_slot"})

# Arguments our actions pass with a response (`dispatcher.utter_message(response=..., **args)`):
# placeholders a template may use besides the domain's slots. tests/admin_api/test_responses.py
# reads actions/*.py and fails when an action passes one that is missing here.
ARGUMENTS: Mapping[str, frozenset[str]] = {
    "utter_order_not_found": frozenset({"attempt", "max_attempts"}),
    "utter_verification_locked": frozenset({"minutes"}),
    "utter_unknown_return_items": frozenset({"order_number", "order_items"}),
    "utter_which_return_items_of_order": frozenset({"order_number", "order_items"}),
    "utter_return_item_already_returned": frozenset({"items", "order_number", "reference"}),
    "utter_return_items_already_returned": frozenset({"items", "order_number", "reference"}),
    "utter_return_registered": frozenset({"items", "order_number", "reference", "order_email"}),
    "utter_return_in_progress": frozenset({"items", "order_number", "reference", "order_email"}),
    "utter_order_pending": frozenset({"order_number", "order_items", "placed"}),
    "utter_order_shipped": frozenset({"order_number", "order_items", "shipped"}),
    "utter_order_shipped_with_carrier": frozenset({"order_number", "order_items", "shipped",
                                                   "carrier"}),
    "utter_order_delivered": frozenset({"order_number", "order_items", "delivered"}),
    "utter_order_cancelled": frozenset({"order_number", "order_items", "cancelled"}),
    "utter_order_returned": frozenset({"order_number", "order_items"}),
    "utter_order_tracking_link": frozenset({"order_number", "carrier", "tracking_number",
                                            "tracking_url"}),
    "utter_order_tracking_number": frozenset({"order_number", "carrier", "tracking_number"}),
    "utter_return_order_cancelled": frozenset({"order_number"}),
    "utter_return_not_delivered_yet": frozenset({"order_number", "return_window_days"}),
    "utter_return_window_closed": frozenset({"order_number", "return_window_days",
                                             "delivered_on", "window_closed_on"}),
    "utter_return_order_fully_returned": frozenset({"order_number"}),
    "utter_handoff_requested": frozenset({"wait"}),
    "utter_handoff_requested_closed": frozenset({"opens"}),
    # Said by the gateway past the monthly conversation limit (connectors/inbox.py).
    "utter_conversation_limit_reached": frozenset({"shop", "contact"}),
    "utter_conversation_limit_reached_no_contact": frozenset({"shop"}),
}

Variant = dict[str, Any]

# Rasa's interpolator: "{name}" (no newline or brace inside) becomes "{0[name]}".
_TAG = re.compile(r"{([^\n{}]+?)}")
# Keys of a variant Rasa interpolates (rasa/core/nlg/response.py `_fill_response`).
_INTERPOLATED = ("text", "image", "custom", "buttons", "attachment", "quick_replies")
# Keys that choose a variant; not part of the message itself.
_SELECTORS = ("channel", "condition")


class UnknownResponse(KeyError):
    """No `utter_*` response of that name in the domain."""


class TemplateError(ValueError):
    """A template that would not render as written: the message says which and why."""


class ResponseOverrideRow(Base):
    __tablename__ = "response_overrides"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))  # "utter_greet"
    # Rasa's response variants: [{"text": str, "channel": str | None, "buttons": [...]}, ...]
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# --- the domain's defaults ------------------------------------------------------------------

@dataclass(frozen=True)
class DomainTexts:
    """The responses and slots of the domain (bot/domain/*.yml, read as YAML)."""

    responses: Mapping[str, tuple[Variant, ...]]
    slots: frozenset[str]

    def defaults(self, name: str) -> list[Variant]:
        try:
            return copy.deepcopy(list(self.responses[name]))
        except KeyError:
            raise UnknownResponse(name) from None

    def allowed_placeholders(self, name: str) -> frozenset[str]:
        return (self.slots - INTERNAL_SLOTS) | ARGUMENTS.get(name, frozenset())


def _collect(documents: Iterable[Mapping[str, Any]], responses: dict[str, tuple[Variant, ...]],
             slots: set[str]) -> None:
    for document in documents:
        for name, variants in (document.get("responses") or {}).items():
            if isinstance(name, str) and name.startswith("utter_") \
                    and isinstance(variants, list | None):
                responses[name] = tuple(v for v in variants or () if isinstance(v, dict))
        found = document.get("slots") or {}
        slots.update(name for name in found if isinstance(name, str))


def read_domain(directory: Path) -> DomainTexts:
    responses: dict[str, tuple[Variant, ...]] = {}
    slots: set[str] = set()
    _collect((yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
              for path in sorted(directory.glob("*.yml"))), responses, slots)
    # Rasa's own slot every domain has (rasa/shared/core/constants.py REQUESTED_SLOT).
    slots.add("requested_slot")
    return DomainTexts(responses=dict(sorted(responses.items())), slots=frozenset(slots))


def with_shop_domain(base: DomainTexts, texts: Iterable[str]) -> DomainTexts:
    """`base` with the responses and slots a shop's own domain files add (their YAML texts, in
    order: a later file's response wins). The base's own responses stay the base's (a draft
    may not redefine them: admin_api/training/checks); a file that does not parse adds
    nothing (the drafts' validation reports it)."""
    documents = []
    for text in texts:
        try:
            document = yaml.load(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            continue
        if isinstance(document, dict):
            documents.append(document)
    responses: dict[str, tuple[Variant, ...]] = {}
    slots: set[str] = set(base.slots)
    _collect(documents, responses, slots)
    added = {name: variants for name, variants in responses.items()
             if name not in base.responses}
    if not added and slots == base.slots:
        return base
    return DomainTexts(responses=dict(sorted({**base.responses, **added}.items())),
                      slots=frozenset(slots))


@lru_cache(maxsize=4)
def domain_texts(directory: Path = DOMAIN_DIR) -> DomainTexts:
    """The domain as this process found it at first use (the files change with a deploy)."""
    return read_domain(directory)


# --- checking and rendering templates -------------------------------------------------------

def strings_in(value: Any) -> Iterable[str]:
    """Every string in a JSON-like value, inside its lists and dicts too (values, not keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)


def placeholders(variants: Sequence[Variant]) -> list[str]:
    """The `{names}` the variants fill in, in order of first use (`{{x}}` is no placeholder)."""
    found: dict[str, None] = {}
    for variant in variants:
        for key in _INTERPOLATED:
            for text in strings_in(variant.get(key)):
                for name in _TAG.findall(text.replace("{{", "").replace("}}", "")):
                    found.setdefault(name, None)
    return list(found)


def validate(name: str, variants: Sequence[Variant], domain: DomainTexts) -> None:
    """Refuse what would not render as written (`TemplateError`, a sentence for a person)."""
    if name not in domain.responses:
        raise UnknownResponse(name)
    if not variants:
        raise TemplateError("give at least one variant")
    if len(variants) > MAX_VARIANTS:
        raise TemplateError(f"at most {MAX_VARIANTS} variants")
    if all(variant.get("channel") for variant in variants):
        # Rasa says nothing when no variant fits the channel: one for every channel is needed.
        raise TemplateError("give at least one variant for every channel (channel null)")
    allowed = domain.allowed_placeholders(name)
    for number, variant in enumerate(variants, start=1):
        if not str(variant.get("text") or "").strip():
            raise TemplateError(f"variant {number} has no text")
        channel = variant.get("channel")
        if channel is not None and channel not in CHANNELS:
            raise TemplateError(f"variant {number}: unknown channel {channel!r}; use one of "
                                f"{', '.join(CHANNELS)}, or null for every channel")
        unknown = [p for p in placeholders([variant]) if p not in allowed]
        if unknown:
            raise TemplateError(
                f"variant {number} uses {', '.join('{' + p + '}' for p in unknown)}, which "
                f"{name} does not know; it can use "
                f"{', '.join('{' + p + '}' for p in sorted(allowed))}")
        probe = {p: "x" for p in allowed}
        for text in (t for key in _INTERPOLATED for t in strings_in(variant.get(key))):
            try:
                _TAG.sub(r"{0[\1]}", text).format(probe)
            except (ValueError, IndexError, KeyError, AttributeError) as exc:
                raise TemplateError(f"variant {number}: {text[:60]!r} does not format ({exc}); "
                                    "write a literal brace as {{ or }}") from None


def interpolate_text(text: str, values: Mapping[str, Any]) -> str:
    """rasa/core/nlg/interpolator.py `interpolate_text`, same results."""
    try:
        filled = _TAG.sub(r"{0[\1]}", text).format(values)
        if "0[" in filled:
            # An escaped tag ("{{name}}") that format left as "{0[name]}": Rasa restores it.
            return text.format({})
        return filled
    except KeyError:
        return text  # Rasa logs and returns the template unfilled


def interpolate(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return interpolate_text(value, values)
    if isinstance(value, dict):
        return {key: interpolate(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, values) for item in value]
    return value


def _matches(slots: Mapping[str, Any], variant: Variant) -> bool:
    for constraint in variant.get("condition") or []:
        filled, wanted = slots.get(constraint["name"]), constraint["value"]
        if isinstance(filled, str) and isinstance(wanted, str):
            if filled.casefold() != wanted.casefold():
                return False
        elif filled != wanted:
            return False
    return True


def eligible(variants: Sequence[Variant], channel: str | None,
             slots: Mapping[str, Any]) -> list[Variant]:
    """rasa/core/nlg/generator.py `ResponseVariationFilter.responses_for_utter_action`."""
    plain = [v for v in variants if v.get("condition") is None]
    conditional = [v for v in variants if v.get("condition") and _matches(slots, v)]
    for group in ([v for v in conditional if v.get("channel") == channel],
                  [v for v in plain if v.get("channel") == channel],
                  [v for v in conditional if v.get("channel") is None]):
        if group:
            return group
    return [v for v in plain if v.get("channel") is None]


def render(variants: Sequence[Variant], channel: str | None, slots: Mapping[str, Any],
           arguments: Mapping[str, Any], choose: Any = random.choice) -> Variant | None:
    """One message as Rasa's templated generator makes it, or None (no variant fits)."""
    candidates = eligible(variants, channel, slots)
    if not candidates:
        return None
    message = {k: copy.deepcopy(v) for k, v in choose(candidates).items()
               if k not in _SELECTORS}
    values = {**{k: "" if v is None else v for k, v in slots.items()}, **arguments}
    if values:
        for key in _INTERPOLATED:
            if key in message:
                message[key] = interpolate(message[key], values)
    return message


def normalise(variants: Iterable[Mapping[str, Any]]) -> list[Variant]:
    """The stored form: text, the channel only when set, buttons only when there are some."""
    stored = []
    for variant in variants:
        item: Variant = {"text": variant["text"]}
        if variant.get("channel"):
            item["channel"] = variant["channel"]
        if variant.get("buttons"):
            item["buttons"] = [{"title": b["title"], "payload": b["payload"]}
                               for b in variant["buttons"]]
        stored.append(item)
    return stored


# --- the shop's overrides -------------------------------------------------------------------

async def read_overrides(sessions: async_sessionmaker, tenant_id: str) -> dict[str, list[Variant]]:
    async with sessions() as session:
        rows = (await session.execute(
            select(ResponseOverrideRow.name, ResponseOverrideRow.variants)
            .where(ResponseOverrideRow.tenant_id == tenant_id))).all()
    return {name: list(variants) for name, variants in rows}


# Settings that are a response's default in one shop: the owner's greeting (PATCH /settings)
# is the shop's `utter_greet` until a designer overrides that response, and the domain's
# text again when the greeting is cleared.
SETTING_DEFAULTS: Mapping[str, str] = {"utter_greet": "greeting"}


async def read_setting_defaults(sessions: async_sessionmaker,
                                tenant_id: str) -> dict[str, list[Variant]]:
    """The shop's defaults that come from its settings (SETTING_DEFAULTS), by response."""
    columns = [getattr(TenantRow, column) for column in SETTING_DEFAULTS.values()]
    async with sessions() as session:
        row = (await session.execute(select(*columns).where(TenantRow.id == tenant_id))).first()
    if row is None:
        return {}
    return {name: [{"text": value}] for name, value in zip(SETTING_DEFAULTS, row, strict=True)
            if value}


async def read_shop_texts(sessions: async_sessionmaker,
                          tenant_id: str) -> dict[str, list[Variant]]:
    """What the shop says where it differs from the domain: its settings' defaults under its
    overrides."""
    return {**await read_setting_defaults(sessions, tenant_id),
            **await read_overrides(sessions, tenant_id)}


async def read_override(sessions: async_sessionmaker, tenant_id: str,
                        name: str) -> list[Variant] | None:
    async with sessions() as session:
        return await session.scalar(
            select(ResponseOverrideRow.variants).where(ResponseOverrideRow.tenant_id == tenant_id,
                                                       ResponseOverrideRow.name == name))


async def store_override(sessions: async_sessionmaker, tenant_id: str, name: str,
                         variants: list[Variant], actor: str | None) -> list[Variant] | None:
    """Insert or replace the shop's override; returns the one it replaced (None: the default
    was in use). Two writers at once: the second one's insert conflicts and it updates."""
    for _ in range(2):
        async with sessions() as session:
            row = await session.scalar(
                select(ResponseOverrideRow).where(ResponseOverrideRow.tenant_id == tenant_id,
                                                  ResponseOverrideRow.name == name))
            before = list(row.variants) if row is not None else None
            if row is None:
                session.add(ResponseOverrideRow(tenant_id=tenant_id, name=name,
                                                variants=variants, updated_by=actor,
                                                updated_at=utcnow()))
            else:
                row.variants, row.updated_by, row.updated_at = variants, actor, utcnow()
            try:
                await session.commit()
            except IntegrityError:
                continue
            return before
    raise RuntimeError("could not store the override")  # pragma: no cover


async def remove_override(sessions: async_sessionmaker, tenant_id: str,
                          name: str) -> list[Variant] | None:
    """Delete the shop's override (the default speaks again); returns what was deleted."""
    async with sessions() as session:
        before = await session.scalar(
            select(ResponseOverrideRow.variants).where(ResponseOverrideRow.tenant_id == tenant_id,
                                                       ResponseOverrideRow.name == name))
        await session.execute(delete(ResponseOverrideRow).where(
            ResponseOverrideRow.tenant_id == tenant_id, ResponseOverrideRow.name == name))
        await session.commit()
    return list(before) if before is not None else None


@dataclass
class _Entry:
    overrides: dict[str, list[Variant]]
    read_at: float


@dataclass
class OverrideCache:
    """Each shop's overrides, read at most once per `ttl` seconds per process."""

    sessions: async_sessionmaker
    ttl: float = 1.0
    clock: Any = time.monotonic
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _loading: dict[str, asyncio.Future[dict[str, list[Variant]]]] = field(default_factory=dict)
    _writes: dict[str, int] = field(default_factory=dict)  # forget() calls per shop

    async def overrides(self, tenant_id: str) -> dict[str, list[Variant]]:
        entry = self._entries.get(tenant_id)
        if entry is not None and self.clock() - entry.read_at < self.ttl:
            return entry.overrides
        loading = self._loading.get(tenant_id)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[dict[str, list[Variant]]] = (
            asyncio.get_running_loop().create_future())
        self._loading[tenant_id] = future
        try:
            started, writes = self.clock(), self._writes.get(tenant_id, 0)
            found = await read_shop_texts(self.sessions, tenant_id)
            # A write in this process while reading: what was read may predate it, so it
            # answers this call but is not kept.
            if self._writes.get(tenant_id, 0) == writes:
                self._entries[tenant_id] = _Entry(found, started)
            future.set_result(found)
            return found
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            del self._loading[tenant_id]

    def forget(self, tenant_id: str) -> None:
        """A write in this process: the next read of the shop goes to the database."""
        self._entries.pop(tenant_id, None)
        self._writes[tenant_id] = self._writes.get(tenant_id, 0) + 1

    async def say(self, tenant_id: str, name: str, channel: str | None, default: str,
                  arguments: Mapping[str, Any] | None = None) -> Variant:
        """A message our own processes say outside Rasa (the gateway's apology), in the
        shop's words when it overrode `name`, else the domain's; `default` when neither can
        be read (the database may be the reason the gateway is apologising)."""
        try:
            variants = await self.variants(tenant_id, name, domain_texts())
            message = render(variants, channel, {}, arguments or {})
        except Exception:  # a visitor must get an answer whatever failed here
            log.warning("shop text unavailable; saying the default", extra={"response": name})
            message = None
        return message if message is not None else {"text": default}

    async def variants(self, tenant_id: str, name: str,
                       domain: DomainTexts) -> list[Variant]:
        """The shop's variants of `name`: its override, else its setting's (SETTING_DEFAULTS),
        else the domain's default."""
        overrides = await self.overrides(tenant_id)
        if name in overrides:
            return overrides[name]
        if name not in domain.responses:
            raise UnknownResponse(name)
        return list(domain.responses[name])
