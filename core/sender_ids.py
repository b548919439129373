"""The id Rasa knows a conversation by: "{tenant_id}:{channel}:{user_key}".

The gateway builds it from what it verified (the tenant from the URL, the channel it received
on, the visitor's address on that channel), so visitors can choose only the last part; the
action server reads the tenant back from it. The user key may itself contain ':' (email
addresses do not, but a REST client's sender may), so parsing splits at the first two only.
"""

from __future__ import annotations

from dataclasses import dataclass


class NotTenantScoped(ValueError):
    """A sender id that the gateway did not build (no tenant or channel part)."""


@dataclass(frozen=True)
class SenderId:
    tenant_id: str
    channel: str
    user_key: str

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.channel}:{self.user_key}"

    @classmethod
    def parse(cls, sender_id: str) -> SenderId:
        parts = sender_id.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise NotTenantScoped(f"sender id is not tenant-scoped: {sender_id[:80]!r}")
        return cls(parts[0], parts[1], parts[2])


def sender_id(tenant_id: str, channel: str, user_key: str) -> str:
    """The sender id of a visitor's conversation with a shop on one channel."""
    return str(SenderId(tenant_id, channel, user_key))
