"""The shop's settings: read them all, change some (PATCH), every change audited.

What the owner changes here is what the gateway and the action server read from the tenant row:
both see tenants through `tenants.resolver.TenantResolver`, which serves a tenant read in the
last 30 s from memory and refreshes an older one in the background. So a change reaches every
gateway and action server within about 30 s (no restart, no message to them); the first
request after that window may still see the old value while the refresh runs.

Validation happens here, at the edge, with the same bounds for every field whatever the
client: a rate of 0 turns that limit off (connectors/limits.py), a shop without a monthly
token budget or a retention period has `null`. Switching the order backend to Shopify or
WooCommerce is refused (409) until that backend's credentials are stored (PUT
/channels/order_backend), with the same check the tenants CLI runs, because a backend
without credentials would fail every order question mid-conversation. The 409's detail is for
the owner (the credentials as the Channels tab labels them, and where to enter them); its
`backend`, `missing` (`shopify.access_token`) and `set_with` are for programs.

The audit entry holds the fields that actually changed, before and after; none of these is a
secret (credentials live in channels.py and never appear here).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import select

from admin_api.analytics import zones
from admin_api.api import API, Call, Model
from admin_api.audit import record
from admin_api.errors import Conflict, NotFound
from admin_api.nlg import texts_cache
from admin_api.principal import OWNERS
from tenants.crypto import CredentialsError
from tenants.models import TenantRow
from tenants.texts import SETTING_DEFAULTS

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Deliberately loose: the address is shown to visitors, not used to send mail from here.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # a newline or tab is fine in a greeting
_MODEL = r"^claude-[a-z0-9][a-z0-9.-]{0,90}$"
# Credentials the order backends need (the tenants CLI's `_REQUIRED`, repeated here because
# the CLI module is an entry point and raises SystemExit).
BACKEND_FIELDS: dict[str, tuple[str, ...]] = {
    "shopify": ("shop_url", "access_token"),
    "woocommerce": ("store_url", "consumer_key", "consumer_secret"),
}
# The backends and their credentials as the Channels tab labels them (its "Orders" card):
# the 409 below says them so, and channels.py labels its fields and 422s with the same.
BACKEND_NAMES = {"shopify": "Shopify", "woocommerce": "WooCommerce"}
BACKEND_FIELD_LABELS: dict[str, dict[str, str]] = {
    "shopify": {"shop_url": "Shop address", "access_token": "Admin API access token",
                "api_version": "API version"},
    "woocommerce": {"store_url": "Store address", "consumer_key": "Consumer key",
                    "consumer_secret": "Consumer secret"},
}


# "HH:MM", 00:00 to 23:59, and 24:00 for an interval that ends at midnight.
Clock = Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")]


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _zone_enum(schema: dict[str, Any]) -> None:
    """The known zones in the document: a client can offer a list, and every zone the
    document allows is one the validator accepts."""
    schema["enum"] = sorted(zones())


class OpeningHours(Model):
    """When people answer: per weekday a list of [start, end] in the shop's time zone
    ("HH:MM", end after start, "24:00" for midnight); a day not listed is closed."""

    timezone: str = Field(description="an IANA time zone name, e.g. Europe/Berlin",
                          max_length=64, examples=["Europe/Berlin"],
                          json_schema_extra=_zone_enum)
    days: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
               Annotated[list[tuple[Clock, Clock]], Field(max_length=8)]] = Field(
        default_factory=dict, examples=[{"mon": [["09:00", "17:00"]]}])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in zones():
            raise ValueError(f"{value[:64]!r} is not an IANA time zone (e.g. Europe/Berlin)")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value[:64]!r} is not an IANA time zone") from None
        return value

    @field_validator("days")
    @classmethod
    def _intervals(cls, days: dict[str, list[tuple[str, str]]]
                   ) -> dict[str, list[tuple[str, str]]]:
        for day, intervals in days.items():
            spans = []
            for start, end in intervals:
                if _minutes(end) <= _minutes(start):
                    raise ValueError(f"{day}: {start}-{end} ends before it starts")
                spans.append((_minutes(start), _minutes(end)))
            spans.sort()
            for (_, first_end), (second_start, _) in zip(spans, spans[1:], strict=False):
                if second_start < first_end:
                    raise ValueError(f"{day}: intervals overlap")
        return {day: sorted(days[day], key=lambda span: _minutes(span[0]))
                for day in DAYS if day in days}


class SettingsOut(Model):
    slug: str = Field(description="the shop's name in public URLs (not changeable here)")
    name: str
    greeting: str | None = Field(description="what the bot says when a visitor greets it or "
                                             "starts (utter_greet's text); empty: the default")
    support_email: str | None
    return_window_days: int
    verification_expiry_minutes: int
    opening_hours: OpeningHours | None
    order_backend: Literal["demo", "shopify", "woocommerce"]
    llm_model: str
    llm_max_tokens: int
    llm_temperature: float
    llm_monthly_token_budget: int | None = Field(description="tokens a month; null: no limit")
    rate_per_client: int = Field(description="messages a minute per client address; 0: off")
    rate_per_conversation: int = Field(description="messages a minute per conversation; 0: off")
    rate_per_shop: int = Field(description="messages a minute for the whole shop; 0: off")
    retention_days: int | None = Field(
        description="conversations older than this are deleted; null: kept")

    @classmethod
    def of(cls, row: TenantRow) -> SettingsOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields
                      if name != "opening_hours"},
                   opening_hours=_hours(row.opening_hours))


def _hours(raw: dict[str, Any] | None) -> OpeningHours | None:
    if not raw:
        return None
    try:
        return OpeningHours.model_validate(raw)
    except ValueError:  # stored before validation existed: shown as not set, not a 500
        return None


NULLABLE = frozenset({"greeting", "support_email", "opening_hours", "llm_monthly_token_budget",
                      "retention_days"})


class SettingsPatch(Model):
    """Only the fields sent change (none sent: nothing changes). `null` clears the fields
    that may be empty (greeting, support_email, opening_hours, llm_monthly_token_budget,
    retention_days); the others refuse it."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | SkipJsonSchema[None] = None
    greeting: str | None = Field(None, max_length=1000)
    support_email: str | None = Field(None, max_length=254)
    return_window_days: Annotated[int, Field(ge=0, le=365)] | SkipJsonSchema[None] = None
    verification_expiry_minutes: Annotated[int, Field(ge=1, le=1440)] | SkipJsonSchema[None] = None
    opening_hours: OpeningHours | None = None
    order_backend: Literal["demo", "shopify", "woocommerce"] | SkipJsonSchema[None] = None
    llm_model: Annotated[str, Field(pattern=_MODEL)] | SkipJsonSchema[None] = None
    llm_max_tokens: Annotated[int, Field(ge=50, le=4096)] | SkipJsonSchema[None] = None
    llm_temperature: Annotated[float, Field(ge=0.0, le=1.0)] | SkipJsonSchema[None] = None
    llm_monthly_token_budget: int | None = Field(None, ge=0, le=2_000_000_000)
    rate_per_client: Annotated[int, Field(ge=0, le=100_000)] | SkipJsonSchema[None] = None
    rate_per_conversation: Annotated[int, Field(ge=0, le=100_000)] | SkipJsonSchema[None] = None
    rate_per_shop: Annotated[int, Field(ge=0, le=1_000_000)] | SkipJsonSchema[None] = None
    retention_days: int | None = Field(None, ge=1, le=3650)

    @field_validator("name", "greeting")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("must not be blank")
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value.strip()

    @field_validator("support_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _EMAIL.fullmatch(value.strip()) or _CONTROL.search(value):
            raise ValueError("is not an email address")
        return value.strip().lower()

    @model_validator(mode="after")
    def _not_cleared(self) -> SettingsPatch:
        cleared = sorted(name for name in self.model_fields_set - NULLABLE
                         if getattr(self, name) is None)
        if cleared:
            raise ValueError(f"{', '.join(cleared)} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: (value.model_dump() if isinstance(value, Model) else value)
                for name in self.model_fields_set
                for value in [getattr(self, name)]}


def _comparable(row: TenantRow, name: str) -> Any:
    value = getattr(row, name)
    if name == "opening_hours":
        hours = _hours(value)
        return hours.model_dump() if hours else None
    return value


def _json(value: Any) -> Any:
    """Tuples (opening hours' intervals) as lists, as the audit log's JSON stores them."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


async def _shop(session: Any, shop: str) -> TenantRow:
    row = (await session.execute(select(TenantRow).where(TenantRow.id == shop))
           ).scalar_one_or_none()
    if row is None:
        raise NotFound("no such shop")
    return row


@API.route("GET", "/settings", roles=OWNERS, response=SettingsOut,
           summary="Read the shop's settings")
async def get_settings(call: Call[None, None]) -> SettingsOut:
    async with call.ctx.sessions() as session:
        return SettingsOut.of(await _shop(session, call.shop))


@API.route("PATCH", "/settings", roles=OWNERS, body=SettingsPatch, response=SettingsOut,
           summary="Change some of the shop's settings", errors=(409,))
async def patch_settings(call: Call[SettingsPatch, None]) -> SettingsOut:
    """Changes the fields sent; the gateway and the action server see them within about
    30 s (their tenant cache), the greeting from the next greeting on (it is the shop's
    utter_greet). The audit entry records the changed fields before and after."""
    wanted = call.body.changes()
    async with call.ctx.sessions() as session:
        row = await _shop(session, call.shop)
        backend = wanted.get("order_backend")
        if backend in BACKEND_FIELDS and backend != row.order_backend:
            _require_backend_credentials(call, row, backend)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for name, value in wanted.items():
            old = _json(_comparable(row, name))
            new = _json(value)
            if old != new:
                before[name], after[name] = old, new
                setattr(row, name, value)
        await session.commit()
        out = SettingsOut.of(row)
    if SETTING_DEFAULTS.values() & after.keys():  # the greeting is the shop's utter_greet
        texts_cache(call.ctx).forget(call.shop)
    if after:
        await record(call, "settings.update", target="settings", before=before, after=after)
    return out


def _require_backend_credentials(call: Call[Any, Any], row: TenantRow, backend: str) -> None:
    try:
        stored = call.ctx.box.open(row.credentials_encrypted)
    except CredentialsError:
        stored = {}
    section = stored.get(backend)
    section = section if isinstance(section, dict) else {}
    missing = [name for name in BACKEND_FIELDS[backend] if not section.get(name)]
    if missing:
        named, labels = BACKEND_NAMES[backend], BACKEND_FIELD_LABELS[backend]
        said = [labels[name] for name in missing]
        needs = " and ".join(filter(None, (", ".join(said[:-1]), said[-1])))
        raise Conflict(
            f"{named} cannot answer order questions without its {needs}: enter "
            f"{'them' if len(missing) > 1 else 'it'} on the Channels tab, under Orders (Shop "
            f"platform: {named}); saving there makes {named} the shop's order backend",
            extra={"backend": backend, "missing": [f"{backend}.{name}" for name in missing],
                   "set_with": "PUT /api/v1/channels/order_backend"})
