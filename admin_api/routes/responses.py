"""The shop's texts: every `utter_*` response with its default and the shop's override.

Every response means the base domain's and the ones the shop's own training data adds (issue
15): those of its domain drafts and of its active model's domain, whose text is the default
(`_domain`). An override of a shop's own response is said like any other: the NLG endpoint
serves a shop's override by name, and without one it answers 404 and the shop's model says
its own domain's text (bot/nlg.py).

A change is live for the next message without retraining: Rasa asks our NLG endpoint
(admin_api/nlg.py) for each response, which reads the same overrides through the cache this
module clears on every write. A template that would not render (an unknown `{placeholder}`,
a lone brace, no variant for every channel) is a 422 naming the problem.

An override outlives its response: the shop's own response goes when its domain draft is
deleted or another model is activated, and its override is kept, to speak again when a draft
or model defines the name again. Such an override is listed, read and deleted like any other,
with `defined` false (nothing says it meanwhile); it cannot be changed until the response
exists again (its placeholders are not known). Before, it could be neither seen nor deleted
(404) and came back unasked.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.audit import record
from admin_api.errors import NotFound, Unprocessable
from admin_api.nlg import texts_cache
from admin_api.principal import DESIGNERS
from admin_api.training.drafts import read_contents
from admin_api.training.models import get_active, get_version
from tenants.texts import (
    DomainTexts,
    TemplateError,
    UnknownResponse,
    domain_texts,
    normalise,
    read_override,
    read_overrides,
    read_setting_defaults,
    remove_override,
    store_override,
    validate,
    with_shop_domain,
)

Channel = Literal["web", "rest", "sms", "whatsapp", "email"]


class Button(Model):
    title: str = Field(min_length=1, max_length=200)
    payload: str = Field(min_length=1, max_length=1000,
                         description="what the button sends: an intent like /affirm, or text")


class VariantIn(Model):
    text: str = Field(min_length=1, max_length=4096,
                      description="the message; {slot} placeholders are filled as Rasa does")
    channel: Channel | None = Field(None, description="only on this channel; null: every channel")
    buttons: list[Button] = Field(default_factory=list, max_length=10)


class VariantOut(Model):
    text: str | None
    channel: str | None
    buttons: list[dict[str, Any]]


class ResponseOut(Model):
    name: str
    default: list[VariantOut] = Field(description="the domain's text, or the shop's greeting "
                                                  "setting for utter_greet when it has one")
    override: list[VariantOut] | None = Field(description="the shop's own; null: the default")
    effective: list[VariantOut] = Field(description="what the bot says")
    placeholders: list[str] = Field(description="the {names} this response may use")
    defined: bool = Field(default=True, description="false: no domain defines it now (its "
                          "domain draft was deleted, another model activated); the shop's "
                          "override is kept for when it is defined again; DELETE removes it")


class NewVariants(Model):
    variants: list[VariantIn] = Field(description="one is chosen at random per message, among "
                                                  "those for the visitor's channel if any")


class ResponseQuery(PageQuery):
    page_size: int = Field(100, ge=1, le=200)
    overridden: bool | None = Field(None, description="only those the shop changed (or not)")


def _out(variants: list[dict[str, Any]]) -> list[VariantOut]:
    return [VariantOut(text=v.get("text"), channel=v.get("channel"),
                       buttons=list(v.get("buttons") or [])) for v in variants]


async def _domain(call: Call[Any, Any]) -> DomainTexts:
    """The base domain with the responses and slots the shop's domain drafts add, then its
    active model's (those win: they are what the bot says)."""
    files = [content for _, _, content in await read_contents(call.ctx.sessions, call.shop,
                                                                 "domain")]
    active = await get_active(call.ctx.sessions, call.shop)
    version = active.version_id and await get_version(call.ctx.sessions, call.shop,
                                                      active.version_id)
    if version:
        files += [text for name, text in sorted(version.files.items())
                  if name.startswith("domain/")]
    return with_shop_domain(domain_texts(), files)


def _response(name: str, override: list[dict[str, Any]] | None,
              setting_defaults: dict[str, list[dict[str, Any]]],
              domain: DomainTexts) -> ResponseOut:
    default = setting_defaults.get(name) or domain.defaults(name)
    return ResponseOut(name=name, default=_out(default),
                       override=_out(override) if override is not None else None,
                       effective=_out(override if override is not None else default),
                       placeholders=sorted(domain.allowed_placeholders(name)))


def _orphan(name: str, override: list[dict[str, Any]] | None) -> ResponseOut:
    """An override of a response no domain defines now: the bot says nothing of it."""
    return ResponseOut(name=name, default=[], effective=[], placeholders=[], defined=False,
                       override=_out(override) if override is not None else None)


def _known(name: str, domain: DomainTexts, orphaned: bool = False) -> None:
    if name not in domain.responses:
        kept = ("; the shop keeps its text from when it was defined (DELETE "
                f"/responses/{name} removes it)" if orphaned else "")
        raise NotFound(f"no response named {name!r}{kept}; GET /responses lists them")


@API.route("GET", "/responses", roles=DESIGNERS, query=ResponseQuery,
           response=Page[ResponseOut], summary="List the bot's responses with the shop's texts")
async def list_responses(call: Call[None, ResponseQuery]) -> Page[ResponseOut]:
    overrides = await read_overrides(call.ctx.sessions, call.shop)
    setting_defaults = await read_setting_defaults(call.ctx.sessions, call.shop)
    domain = await _domain(call)
    names = [n for n in domain.responses
             if call.query.overridden is None or (n in overrides) == call.query.overridden]
    if call.query.overridden is not False:  # overrides of responses gone, last
        names += sorted(n for n in overrides if n not in domain.responses)
    chosen = names[call.query.offset:call.query.offset + call.query.page_size]
    return Page[ResponseOut](items=[_response(n, overrides.get(n), setting_defaults, domain)
                                    if n in domain.responses else _orphan(n, overrides[n])
                                    for n in chosen],
                             total=len(names), page=call.query.page,
                             page_size=call.query.page_size)


@API.route("GET", "/responses/{name}", roles=DESIGNERS, response=ResponseOut,
           summary="Read one response with the shop's text")
async def get_response(call: Call[None, None]) -> ResponseOut:
    name, domain = call.path["name"], await _domain(call)
    override = await read_override(call.ctx.sessions, call.shop, name)
    if name not in domain.responses and override is not None:
        return _orphan(name, override)
    _known(name, domain)
    return _response(name, override, await read_setting_defaults(call.ctx.sessions, call.shop),
                     domain)


@API.route("PUT", "/responses/{name}", roles=DESIGNERS, body=NewVariants, response=ResponseOut,
           summary="Set the shop's text of a response", errors=(422,))
async def put_response(call: Call[NewVariants, None]) -> ResponseOut:
    name, domain = call.path["name"], await _domain(call)
    _known(name, domain, orphaned=await read_override(call.ctx.sessions, call.shop, name)
           is not None)
    variants = normalise(v.model_dump() for v in call.body.variants)
    try:
        validate(name, variants, domain)
    except UnknownResponse:  # pragma: no cover (checked above)
        raise NotFound(f"no response named {name!r}") from None
    except TemplateError as exc:
        raise Unprocessable(str(exc)) from None
    before = await store_override(call.ctx.sessions, call.shop, name, variants,
                                  call.principal.actor)
    texts_cache(call.ctx).forget(call.shop)
    await record(call, "response.update", target=name,
                 before={"variants": before}, after={"variants": variants})
    return _response(name, variants, await read_setting_defaults(call.ctx.sessions, call.shop),
                     domain)


@API.route("DELETE", "/responses/{name}", roles=DESIGNERS, response=ResponseOut,
           summary="Restore the default text of a response")
async def delete_response(call: Call[None, None]) -> ResponseOut:
    """Removes the shop's override: also of a response no domain defines now (`defined`
    false), which would otherwise speak again once one does."""
    name, domain = call.path["name"], await _domain(call)
    defined = name in domain.responses
    before = await remove_override(call.ctx.sessions, call.shop, name)
    if not defined and before is None:
        _known(name, domain)
    texts_cache(call.ctx).forget(call.shop)
    if before is not None:
        await record(call, "response.reset", target=name, before={"variants": before},
                     after=None)
    if not defined:
        return _orphan(name, None)
    return _response(name, None, await read_setting_defaults(call.ctx.sessions, call.shop),
                     domain)

