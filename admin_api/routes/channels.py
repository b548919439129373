"""Channel and order-backend credentials: which are configured, and setting them.

Secrets are write-only. The shop's credentials are one Fernet-sealed JSON object
(tenants/crypto.py) with a section per channel (the registry's `Channel.section`) and per order
backend ("shopify", "woocommerce"). GET shows, per channel, whether it is usable and only the
fields listed in PUBLIC below (numbers, addresses, account ids: what the owner needs to
recognise the setup), plus the *names* of the other stored fields. The list is an allowlist on
purpose: a field a channel adds later stays hidden until someone decides it is not a secret.

PUT merges the body into the stored section (a field sent as null is removed; nested objects
such as email's `smtp` merge too, so changing the SMTP host does not drop its password), then
checks the merged section with the channel's own `check_credentials` from the registry, the
same rules the gateway applies before it accepts a webhook (connectors/channels/contract.py):
credentials it would refuse are refused here with 422 and the problems (each field named as
the Channels tab labels it, never a value; GET says what stored ones lack in the same words).
The order backend (`PUT /channels/order_backend`) is checked for the fields its client needs
(required in its body's schema, as admin_api/routes/settings.py BACKEND_FIELDS; that body's
422 is worded here too, `order_backend_errors`) and becomes the shop's backend. Hosts our
servers would connect to for the shop (the REST reply callback, the SMTP server, the store's
URL) must be public unless the deployment allows private destinations (core/destinations.py):
a 422 naming the field otherwise.

The audit entry names the fields that changed, never their values.

When a change is seen: gateways read the tenant (and so the new sealed credentials) through
their 30 s tenant cache, and their decrypted-credentials cache is keyed by the sealed token,
so new channel credentials apply within about 30 s. The action server also caches the order
backend client per shop and backend kind (actions/runtime.py `backend_for`): a new backend
applies within 30 s, new credentials for the same backend once the action server restarts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, RootModel, ValidationError
from sqlalchemy import select

from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.audit import record
from admin_api.errors import NotFound, Unprocessable
from admin_api.plan_limits import binding_plan, require_channel
from admin_api.principal import OWNERS
from admin_api.routes.settings import BACKEND_FIELD_LABELS, BACKEND_FIELDS, BACKEND_NAMES
from connectors.channels import BY_NAME, CHANNELS, Channel
from core.destinations import Destinations
from tenants.crypto import CredentialsError
from tenants.models import TenantRow

ORDER_BACKEND = "order_backend"
# Fields shown back per credentials section (nested: "smtp.host"); everything else is secret.
PUBLIC: dict[str, frozenset[str]] = {
    "twilio": frozenset({"account_sid", "sms_numbers", "whatsapp_numbers",
                         "whatsapp_template"}),
    "meta_whatsapp": frozenset({"phone_number_id", "template"}),
    "email": frozenset({"address", "from_name", "inbound", "smtp.host", "smtp.port",
                        "smtp.username", "smtp.starttls"}),
    "shopify": frozenset({"shop_url", "api_version"}),
    "woocommerce": frozenset({"store_url"}),
    "rest": frozenset({"callback_url"}),
}
# Each field as the Channels tab labels it (admin_api/pages/channels.js FORMS and BACKENDS;
# a test keeps the two alike): a 422 names the field the owner sees, never the API's path.
LABELS: dict[str, dict[str, str]] = {
    "twilio": {"account_sid": "Account SID", "auth_token": "Auth token",
               "sms_numbers": "SMS numbers", "whatsapp_numbers": "WhatsApp numbers",
               "whatsapp_template.content_sid": "WhatsApp template (content SID)"},
    "meta_whatsapp": {"phone_number_id": "Phone number ID", "access_token": "Access token",
                      "app_secret": "App secret", "verify_token": "Verify token",
                      "template.name": "Template name", "template.language": "Template language"},
    "email": {"address": "Support address", "from_name": "Sender name",
              "inbound": "Inbound mail service",
              "mailgun_signing_key": "Mailgun signing key",
              "sendgrid_public_key": "SendGrid verification key", "smtp.host": "SMTP host",
              "smtp.port": "SMTP port", "smtp.username": "SMTP user name",
              "smtp.password": "SMTP password", "smtp.starttls": "Use STARTTLS"},
    "rest": {"callback_url": "Reply callback URL", "signing_secret": "Callback signing secret"},
    **BACKEND_FIELD_LABELS,
}
# Paths the checks name that are no field of their own: the field the owner fills for them.
STANDS_FOR = {"email": {"smtp": ("smtp.host", "SMTP server")}}
# The order backend form's choice and its options, as channels.js words them (a test too).
CHOICE_LABEL = "Shop platform"
BACKEND_LABELS = {"demo": "Demo orders (no shop platform)", **BACKEND_NAMES}
_BACKENDS = ("demo", *BACKEND_FIELDS)
BACKEND_URLS = {"shopify": "shop_url", "woocommerce": "store_url"}  # what the actions call
SECTIONS = {c.name: c.section for c in CHANNELS}  # what the plan's channel limit counts


class ProblemOut(Model):
    field: str | None = Field(description="the field it is about, as PUT's 422 names it "
                              "(`twilio.auth_token`); null: the section as a whole")
    label: str | None = Field(description="that field's label on the Channels tab")
    msg: str = Field(description="what is wrong, as `problems` says it")


class ChannelOut(Model):
    name: str = Field(description="the channel's name; `order_backend` for the shop platform")
    label: str
    needs_credentials: bool
    configured: bool = Field(description="usable: its credentials pass the channel's check")
    problems: list[str] = Field(description="what its stored credentials lack, each field "
                                "named as the Channels tab labels it")
    problem_details: list[ProblemOut] = Field(description="the same problems, each with the "
                                              "field it is about")
    fields: dict[str, Any] = Field(description="its stored non-secret fields")
    secret_fields: list[str] = Field(description="names of its stored secret fields; their "
                                                 "values are never returned")
    embed: str | None = Field(default=None, description="web: the script tag to paste into "
                              "the shop's pages (the gateway's origin: PUBLIC_BASE_URL)")


class ChannelPut(Model):
    credentials: dict[str, Any] = Field(
        max_length=40, description="fields to set in the channel's section; null removes one",
        examples=[{"account_sid": "AC…", "auth_token": "…", "sms_numbers": ["+15550001111"]}])


_FILLED = r"\S"  # not blank: the backends strip what they are given


class DemoBackendPut(Model):
    backend: Literal["demo"]


class ShopifyCredentials(Model):
    shop_url: str = Field(max_length=500, pattern=_FILLED, examples=["acme.myshopify.com"])
    access_token: str = Field(max_length=500, pattern=_FILLED)
    api_version: str | None = Field(None, pattern=r"^\d{4}-\d{2}$", examples=["2024-10"])


class ShopifyBackendPut(Model):
    backend: Literal["shopify"]
    credentials: ShopifyCredentials


class WooCommerceCredentials(Model):
    store_url: str = Field(max_length=500, pattern=_FILLED, examples=["https://shop.example"])
    consumer_key: str = Field(max_length=500, pattern=_FILLED)
    consumer_secret: str = Field(max_length=500, pattern=_FILLED)


class WooCommerceBackendPut(Model):
    backend: Literal["woocommerce"]
    credentials: WooCommerceCredentials


class OrderBackendPut(RootModel[Annotated[
        DemoBackendPut | ShopifyBackendPut | WooCommerceBackendPut,
        Field(discriminator="backend")]]):
    """The backend and, for a shop platform, all of its credentials (the fields its client
    needs are required here, so the document says what is accepted)."""


def split_fields(section: Mapping[str, Any], public: frozenset[str],
                 prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """(public fields, names of the secret ones) of a stored section."""
    shown: dict[str, Any] = {}
    hidden: list[str] = []
    for key, value in section.items():
        name = f"{prefix}{key}"
        if name in public:
            shown[key] = value
        elif isinstance(value, Mapping) and any(p.startswith(f"{name}.") for p in public):
            inner, secret = split_fields(value, public, f"{name}.")
            shown[key] = inner
            hidden += secret
        else:
            hidden.append(name)
    return shown, sorted(hidden)


def merge(stored: Mapping[str, Any], changes: Mapping[str, Any],
          prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """`stored` with `changes` applied (None removes, objects merge); and the changed names."""
    merged = dict(stored)
    changed: list[str] = []
    for key, value in changes.items():
        name = f"{prefix}{key}"
        old = merged.get(key)
        if value is None:
            if key in merged:
                del merged[key]
                changed.append(name)
        elif isinstance(value, Mapping):  # field by field, so the audit names the leaves
            merged[key], inner = merge(old if isinstance(old, Mapping) else {}, value,
                                       f"{name}.")
            changed += inner
        elif old != value:
            merged[key] = value
            changed.append(name)
    return merged, changed


def backend_problems(backend: str, section: Mapping[str, Any]) -> list[str]:
    problems = [f"{backend}.{name} is missing" for name in BACKEND_FIELDS.get(backend, ())
                if not section.get(name)]
    problems += [f"{backend}.{name} must be a string" for name, value in section.items()
                 if not isinstance(value, str)]
    return problems


def backend_url_problems(backend: str, section: Mapping[str, Any],
                         destinations: Destinations) -> list[str]:
    """The store's URL under the outbound-destination policy (the action server's client
    checks its addresses again at each call). Read as the backends read it: without a
    scheme, https:// is meant."""
    name = BACKEND_URLS.get(backend)
    raw = str(section.get(name) or "").strip() if name else ""
    if not raw:
        return []
    try:
        host = urlsplit(raw if "://" in raw else f"https://{raw}").hostname or ""
    except ValueError:
        return [f"{backend}.{name} is not a URL (https://shop.example)"]
    if not host:
        return [f"{backend}.{name} needs a host name (https://shop.example)"]
    refused = destinations.refusal(host)
    return [f"{backend}.{name} {refused}"] if refused else []


def labelled(section: str, problems: list[str], label: str, at: tuple[str, ...] = ()
             ) -> list[dict[str, Any]]:
    """A 422's detail for the Channels tab and scripts alike: each problem of the section's
    check with its fields named by their labels ("Auth token is missing", not
    "twilio.auth_token is missing"); `loc` (under `at`) and `field` name the first field it is
    about, for a form to put it there ([] and null: about the section as a whole)."""
    names = {path: (path, text) for path, text in LABELS.get(section, {}).items()}
    names.update(STANDS_FOR.get(section, {}))
    detail = []
    for problem in problems:
        first: tuple[int, str, str] | None = None
        text = problem
        for path in sorted(names, key=len, reverse=True):
            field, shown = names[path]
            # section.path anywhere; a bare path only when it cannot be an English word
            bare = rf"|(?<![\w.]){re.escape(path)}(?![\w.])" if "_" in path else ""
            pattern = re.compile(rf"(?<![\w.]){re.escape(section)}\.{re.escape(path)}"
                                 rf"(?![\w.]){bare}")
            found = pattern.search(problem)
            if found and (first is None or found.start() < first[0]):
                first = (found.start(), field, shown)
            text = pattern.sub(shown, text)
        if text.startswith(f"{section} "):
            text = f"{label[:1].upper()}{label[1:]}{text[len(section):]}"
        detail.append({"loc": [*at, *first[1].split(".")] if first else [],
                       "field": f"{section}.{first[1]}" if first else None,
                       "label": first[2] if first else None, "msg": text})
    return detail


def shown_problems(section: str, problems: list[str], label: str) -> dict[str, Any]:
    """GET's `problems` and `problem_details`: the section's problems in the Channels tab's
    words (as a 422's, `labelled`), without the 422's `loc` (no body to point into)."""
    detail = labelled(section, problems, label)
    return {"problems": [p["msg"] for p in detail],
            "problem_details": [ProblemOut(field=p["field"], label=p["label"], msg=p["msg"])
                                for p in detail]}


# A field's own format, said when its pattern refuses a value (the rest only need text).
FORMATS = {"shopify.api_version": "is a year and month, as 2024-10"}


def _field_said(field: str, label: str, error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing" or (kind == "string_pattern_mismatch" and ctx.get("pattern") == _FILLED):
        return f"{label} is missing"  # blank: the backends strip what they are given
    if kind == "string_pattern_mismatch" and field in FORMATS:
        return f"{label} {FORMATS[field]}"
    if kind == "string_type":
        return f"{label} must be a string"
    if kind == "string_too_long":
        return f"{label} is too long (at most {ctx.get('max_length')} characters)"
    return f"{label}: {error['msg']}"


UNSTORABLE = "string_unstorable"  # api.py: NUL or an unpaired surrogate, where it was sent
_CANNOT_STORE = ("holds a character that cannot be stored (NUL, U+0000, or an unpaired "
                 "surrogate): type or paste it again")


def _unstorable_said(loc: list[str]) -> dict[str, Any]:
    """Where api.py found text no database keeps, located in the JSON as sent
    (`credentials.access_token`, no backend tag): the field by its label. The backends'
    credential names are distinct, so the name tells the backend."""
    if loc == ["backend"]:
        return {"field": "backend", "label": CHOICE_LABEL,
                "msg": f"{CHOICE_LABEL} {_CANNOT_STORE}"}
    name = loc[1] if len(loc) == 2 and loc[0] == "credentials" else None
    backend = next((b for b, labels in BACKEND_FIELD_LABELS.items() if name in labels), None)
    if name is None or backend is None:
        return {"msg": f"The body's {'.'.join(loc)[:80] or 'text'} {_CANNOT_STORE}"}
    label = BACKEND_FIELD_LABELS[backend][name]
    return {"loc": [backend, *loc], "field": f"{backend}.{name}", "label": label,
            "msg": f"{label} {_CANNOT_STORE}"}


def order_backend_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """PUT /channels/order_backend's body refused before the route runs (api.py), answered
    as the route's own checks are (`labelled`): {loc, field, label, msg} with each field named
    as the Channels tab labels it, and pydantic's `type`. Never the input (a token); a key
    nobody asked for is named, cut to 40 characters."""
    detail: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc, kind = [str(part) for part in error["loc"]], error["type"]
        said: dict[str, Any] = {"loc": loc, "field": None, "label": None}
        if kind == UNSTORABLE:
            said.update(_unstorable_said(loc))
        elif not loc and kind in ("union_tag_invalid", "union_tag_not_found"):
            said.update(loc=["backend"], field="backend", label=CHOICE_LABEL,
                        msg=f"{CHOICE_LABEL} is missing" if kind == "union_tag_not_found"
                        else f"{CHOICE_LABEL} is one of {', '.join(_BACKENDS)}")
        elif len(loc) < 2:
            said["msg"] = ("Send an object with the backend and its credentials (see README, "
                           "Channels)")
        else:
            backend, rest = loc[0], loc[1:]
            named, labels = BACKEND_LABELS.get(backend, backend), LABELS.get(backend, {})
            if rest[0] != "credentials":
                said["msg"] = (f"There is no {rest[0][:40]!r} in the body: send the backend "
                               "and its credentials")
            elif backend == "demo":
                said["msg"] = "Demo orders take no credentials"
            elif len(rest) == 1:
                said["msg"] = (
                    f"{named} needs its credentials: "
                    f"{', '.join(labels[name] for name in BACKEND_FIELDS.get(backend, ()))}"
                    if kind == "missing" else f"{named}'s credentials must be an object of "
                    "its fields (see README, Channels)")
            elif len(rest) == 2 and rest[1] in labels:
                field = f"{backend}.{rest[1]}"
                said.update(field=field, label=labels[rest[1]],
                            msg=_field_said(field, labels[rest[1]], error))
            else:
                said["msg"] = (f"{named} has no field {rest[1][:40]!r} (its fields: "
                               f"{', '.join(labels.values())})")
        detail.append({**said, "type": kind})
    return detail


def _problems(channel: Channel, credentials: Mapping[str, Any],
              destinations: Destinations | None = None) -> list[str]:
    """The channel's own check (and with `destinations`, its hosts under that policy); a
    value of a shape it does not expect (a list where it wants a name) is a problem too, not
    a crash."""
    try:
        return channel.problems(credentials, destinations)
    except (TypeError, AttributeError, ValueError):
        return [f"{channel.section} has a field of the wrong type (see README, Channels)"]


def _opened(call: Call[Any, Any], row: TenantRow) -> dict[str, Any]:
    try:
        return call.ctx.box.open(row.credentials_encrypted)
    except CredentialsError:
        # Sealed with a key this process lacks: say nothing is configured rather than fail;
        # a PUT then starts a fresh object (the gateway could not read the old one either).
        return {}


def _section(credentials: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = credentials.get(name)
    return section if isinstance(section, Mapping) else {}


def _channel_out(channel: Channel, credentials: Mapping[str, Any],
                 row: TenantRow) -> ChannelOut:
    section = _section(credentials, channel.section)
    if channel.check_credentials is None:
        # Works without credentials; optional ones (REST's reply callback) are shown if set.
        fields: dict[str, Any] = {"widget_key": row.widget_key} if channel.name == "web" else {}
        shown, hidden = split_fields(section, PUBLIC.get(channel.section, frozenset()))
        return ChannelOut(name=channel.name, label=channel.label, needs_credentials=False,
                          configured=True, fields={**fields, **shown}, secret_fields=hidden,
                          **shown_problems(channel.section, _problems(channel, credentials),
                                           channel.label))
    shown, hidden = split_fields(section, PUBLIC.get(channel.section, frozenset()))
    problems = _problems(channel, credentials) if section else []
    return ChannelOut(name=channel.name, label=channel.label, needs_credentials=True,
                      configured=bool(section) and not problems, fields=shown,
                      secret_fields=hidden,
                      **shown_problems(channel.section, problems, channel.label))


def _backend_out(credentials: Mapping[str, Any], row: TenantRow) -> ChannelOut:
    backend = row.order_backend
    section = _section(credentials, backend)
    shown, hidden = split_fields(section, PUBLIC.get(backend, frozenset()))
    problems = backend_problems(backend, section) if backend in BACKEND_FIELDS else []
    return ChannelOut(name=ORDER_BACKEND, label=f"order backend ({backend})",
                      needs_credentials=backend in BACKEND_FIELDS, configured=not problems,
                      fields={"backend": backend, **shown}, secret_fields=hidden,
                      **shown_problems(backend, problems, BACKEND_LABELS.get(backend, backend)))


async def _tenant(session: Any, shop: str) -> TenantRow:
    row = (await session.execute(select(TenantRow).where(TenantRow.id == shop))
           ).scalar_one_or_none()
    if row is None:
        raise NotFound("no such shop")
    return row


@API.route("GET", "/channels", roles=OWNERS, query=PageQuery, response=Page[ChannelOut],
           summary="List the channels and the order backend, configured or not")
async def list_channels(call: Call[None, PageQuery]) -> Page[ChannelOut]:
    async with call.ctx.sessions() as session:
        row = await _tenant(session, call.shop)
    credentials = _opened(call, row)
    items = [_embedded(call, _channel_out(c, credentials, row), row) for c in CHANNELS]
    items.append(_backend_out(credentials, row))
    chosen = items[call.query.offset:call.query.offset + call.query.page_size]
    return Page[ChannelOut](items=chosen, total=len(items), page=call.query.page,
                           page_size=call.query.page_size)


@API.route("GET", "/channels/{name}", roles=OWNERS, response=ChannelOut,
           summary="Read one channel's setup (never its secrets)")
async def get_channel(call: Call[None, None]) -> ChannelOut:
    name = call.path["name"]
    async with call.ctx.sessions() as session:
        row = await _tenant(session, call.shop)
    return _embedded(call, _channel_out(_known(name), _opened(call, row), row), row)


# Its own route: PUT /channels/order_backend is a path of its own, which the router matches
# before /channels/{name}, so a GET there would otherwise be a 405.
@API.route("GET", "/channels/order_backend", roles=OWNERS, response=ChannelOut,
           summary="Read the order backend's setup (never its secrets)")
async def get_order_backend(call: Call[None, None]) -> ChannelOut:
    async with call.ctx.sessions() as session:
        row = await _tenant(session, call.shop)
    return _backend_out(_opened(call, row), row)


def _embedded(call: Call[Any, Any], out: ChannelOut, row: TenantRow) -> ChannelOut:
    """The web channel with the script tag an owner pastes into the shop's pages. The
    gateway's public origin is PUBLIC_BASE_URL; without it, under `make run`, the gateway the
    admin service talks to on loopback is the public one; otherwise a placeholder the owner
    replaces (GATEWAY_URL is then the gateway's address inside the deployment)."""
    if out.name != "web":
        return out
    settings = call.ctx.settings
    origin = settings.public_base_url or (
        settings.gateway_url if _loopback(settings.gateway_url) else "https://YOUR-GATEWAY")
    script = (f'<script src="{origin.rstrip("/")}/channels/{row.slug}/web/widget.js" '
              f'data-key="{row.widget_key}" async></script>')
    return out.model_copy(update={"embed": script})


def _loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _known(name: str) -> Channel:
    channel = BY_NAME.get(name)
    if channel is None:
        raise NotFound(f"no channel called {name[:40]!r} (one of: "
                       f"{', '.join([*BY_NAME, ORDER_BACKEND])})")
    return channel


@API.route("PUT", "/channels/{name}", roles=OWNERS, body=ChannelPut, response=ChannelOut,
           summary="Set a channel's credentials (checked by the channel's own rules)",
           errors=(402,))
async def put_channel(call: Call[ChannelPut, None]) -> ChannelOut:
    """Merges the fields sent into the channel's stored credentials and stores them sealed,
    if the channel's own check accepts the result; 422 with the problems otherwise. For the
    order backend see PUT /channels/order_backend."""
    channel = _known(call.path["name"])
    if channel.check_credentials is None and channel.optional_credentials is None:
        raise Unprocessable(f"the {channel.label} channel needs no credentials")
    body = call.body
    plan = await binding_plan(call)
    async with call.ctx.sessions() as session:
        row = await _tenant(session, call.shop)
        credentials = _opened(call, row)
        section, changed = merge(_section(credentials, channel.section), body.credentials)
        candidate = {**credentials, channel.section: section}
        problems = _problems(channel, candidate, call.ctx.settings.destinations)
        if problems:
            raise Unprocessable(labelled(channel.section, problems, channel.label,
                                         at=("credentials",)))
        if changed:  # one channel more than the plan allows: 402 (a configured one is fine)
            require_channel(plan, channel.name, credentials, SECTIONS)
            row.credentials_encrypted = call.ctx.box.seal(candidate)
            await session.commit()
        out = _channel_out(channel, candidate, row)
    if changed:
        await record(call, "channel.credentials", target=channel.name,
                     after={"fields": sorted(changed)})
    return out


@API.route("PUT", "/channels/order_backend", roles=OWNERS, body=OrderBackendPut,
           response=ChannelOut, summary="Choose the order backend and set its credentials",
           body_errors=order_backend_errors)
async def put_order_backend(call: Call[OrderBackendPut, None]) -> ChannelOut:
    """Shopify needs shop_url and access_token (api_version optional), WooCommerce store_url,
    consumer_key and consumer_secret; they replace the stored ones. The backend becomes the
    shop's order backend; switching to demo keeps the platform's credentials for later."""
    body = call.body.root
    async with call.ctx.sessions() as session:
        row = await _tenant(session, call.shop)
        credentials = _opened(call, row)
        changed: list[str] = []
        candidate = dict(credentials)
        if not isinstance(body, DemoBackendPut):
            section = body.credentials.model_dump(exclude_none=True)
            problems = backend_url_problems(body.backend, section,
                                            call.ctx.settings.destinations)
            if problems:
                raise Unprocessable(labelled(body.backend, problems,
                                             BACKEND_LABELS[body.backend],
                                             at=(body.backend, "credentials")))
            stored = _section(credentials, body.backend)
            changed = sorted(name for name in {*section, *stored}
                             if section.get(name) != stored.get(name))
            candidate[body.backend] = section
        previous = row.order_backend
        if changed:
            row.credentials_encrypted = call.ctx.box.seal(candidate)
        row.order_backend = body.backend
        await session.commit()
        out = _backend_out(candidate, row)
    if changed or previous != body.backend:
        await record(call, "order_backend.credentials", target=body.backend,
                     before={"order_backend": previous},
                     after={"order_backend": body.backend,
                            "fields": sorted(f"{body.backend}.{name}" for name in changed)})
    return out


@API.route("DELETE", "/channels/{name}", roles=OWNERS, response=ChannelOut,
           summary="Remove a channel's credentials (the channel stops answering)")
async def delete_channel(call: Call[None, None]) -> ChannelOut:
    """The channel's section is removed; its webhooks answer 404 within about 30 s. The order
    backend cannot be removed, only switched (PUT /channels/order_backend with `demo`)."""
    name = call.path["name"]
    if name == ORDER_BACKEND:
        raise Unprocessable("switch the order backend instead: PUT /channels/order_backend")
    channel = _known(name)
    if channel.check_credentials is None and channel.optional_credentials is None:
        raise Unprocessable(f"the {channel.label} channel has no credentials")
    async with call.ctx.sessions() as session:
        row = await _tenant(session, call.shop)
        credentials = _opened(call, row)
        removed = channel.section in credentials
        remaining = {k: v for k, v in credentials.items() if k != channel.section}
        if removed:
            row.credentials_encrypted = call.ctx.box.seal(remaining) if remaining else None
            await session.commit()
        out = _channel_out(channel, remaining, row)
    if removed:
        await record(call, "channel.remove", target=channel.name)
    return out
