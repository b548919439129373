"""Which tenant a conversation belongs to, read from the tracker and nothing else.

The gateway builds every sender id (core/sender_ids.py) and visitors cannot choose its tenant
or channel part, so the sender id is the authority; the `tenant_id` slot (set at session
start) must agree with it.
"""

from __future__ import annotations

from rasa_sdk import Tracker

from actions.runtime import runtime
from core.sender_ids import NotTenantScoped, SenderId
from tenants import Tenant, UnknownTenant


class NoTenant(LookupError):
    """The conversation carries no valid tenant (not created by our gateway)."""


def parse_sender_id(sender_id: str) -> SenderId:
    try:
        return SenderId.parse(sender_id)
    except NotTenantScoped as exc:
        raise NoTenant(str(exc)) from None


def channel_of(tracker: Tracker) -> str:
    try:
        return parse_sender_id(tracker.sender_id).channel
    except NoTenant:
        return "unknown"


async def tenant_of(tracker: Tracker) -> Tenant:
    tenant_id = parse_sender_id(tracker.sender_id).tenant_id
    slot = tracker.get_slot("tenant_id")
    if slot and slot != tenant_id:
        raise NoTenant("tenant slot disagrees with the sender id")
    try:
        return await runtime().tenants.get(tenant_id)
    except UnknownTenant as exc:
        raise NoTenant(str(exc)) from None
