"""The shop's API keys: list, create (the secret is shown once), revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.audit import record
from admin_api.errors import NotFound
from admin_api.plan_limits import AGENT, require_agent
from admin_api.principal import OWNERS
from tenants.api_keys import ApiKey, UnknownApiKey, issue_key, list_keys, revoke_key


class KeyOut(Model):
    id: str = Field(description="the key's prefix: its public name")
    name: str
    role: str = Field(description="owner | designer | agent, or rest (the REST channel)")
    label: str = Field(description="how the key starts: sb_live_<prefix>…")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(id=key.prefix, name=key.name, role=key.scope, label=key.label,
                   created_at=key.created_at, last_used_at=key.last_used_at,
                   revoked_at=key.revoked_at)


class NewKey(Model):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["owner", "designer", "agent", "rest"]


class IssuedKeyOut(KeyOut):
    secret: str = Field(description="the whole key; shown once, stored only as a hash")


@API.route("GET", "/keys", roles=OWNERS, query=PageQuery, response=Page[KeyOut],
           summary="List the shop's API keys")
async def list_api_keys(call: Call[None, PageQuery]) -> Page[KeyOut]:
    """Newest first, as the owner page shows them: the key just made is on the first page."""
    keys = (await list_keys(call.ctx.sessions, call.shop))[::-1]
    chosen = keys[call.query.offset:call.query.offset + call.query.page_size]
    return Page[KeyOut](items=[KeyOut.of(k) for k in chosen], total=len(keys),
                        page=call.query.page, page_size=call.query.page_size)


@API.route("POST", "/keys", roles=OWNERS, body=NewKey, response=IssuedKeyOut, status=201,
           summary="Create an API key")
async def create_api_key(call: Call[NewKey, None]) -> IssuedKeyOut:
    if call.body.role == AGENT:  # a key answers conversations as an agent: one more seat
        await require_agent(call)
    issued = await issue_key(call.ctx.sessions, call.shop, call.body.name, scope=call.body.role)
    await record(call, "key.create", target=issued.key.prefix,
                 after={"name": issued.key.name, "role": issued.key.scope})
    return IssuedKeyOut(**KeyOut.of(issued.key).model_dump(), secret=issued.secret)


@API.route("DELETE", "/keys/{key_id}", roles=OWNERS, response=KeyOut,
           summary="Revoke an API key")
async def revoke_api_key(call: Call[None, None]) -> KeyOut:
    try:
        key = await revoke_key(call.ctx.sessions, call.shop, call.path["key_id"])
    except UnknownApiKey:
        raise NotFound("no such key in your shop") from None
    call.ctx.keys.forget(key.prefix)
    await record(call, "key.revoke", target=key.prefix)
    return KeyOut.of(key)
