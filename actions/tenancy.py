"""Which tenant a conversation belongs to, read from the tracker and nothing else.

The gateway builds every sender id as "{tenant_id}:{channel}:{user}" and visitors cannot
choose it, so the sender id is the authority; the `tenant_id` slot (set at session start)
must agree with it.
"""

from __future__ import annotations

from rasa_sdk import Tracker

from actions.runtime import runtime
from tenants import Tenant, UnknownTenant


class NoTenant(LookupError):
    """The conversation carries no valid tenant (not created by our gateway)."""


def parse_sender_id(sender_id: str) -> tuple[str, str, str]:
    """'{tenant_id}:{channel}:{user}' -> (tenant_id, channel, user). User may contain ':'."""
    parts = sender_id.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise NoTenant(f"sender id is not tenant-scoped: {sender_id[:80]!r}")
    return parts[0], parts[1], parts[2]


def channel_of(tracker: Tracker) -> str:
    try:
        return parse_sender_id(tracker.sender_id)[1]
    except NoTenant:
        return "unknown"


async def tenant_of(tracker: Tracker) -> Tenant:
    tenant_id, _, _ = parse_sender_id(tracker.sender_id)
    slot = tracker.get_slot("tenant_id")
    if slot and slot != tenant_id:
        raise NoTenant("tenant slot disagrees with the sender id")
    try:
        return await runtime().tenants.get(tenant_id)
    except UnknownTenant as exc:
        raise NoTenant(str(exc)) from None
