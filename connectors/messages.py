"""The one shape every channel's inbound message is parsed into before it goes further."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tenants import Tenant


@dataclass(frozen=True)
class InboundMessage:
    tenant: Tenant
    channel: str  # "rest", later "web", "sms", "whatsapp", "email"
    user_key: str  # the visitor's id on that channel (sender, phone number, address)
    text: str
    message_id: str | None = None  # the provider's id, for dedupe
    client_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def sender_id(self) -> str:
        """What Rasa sees; visitors cannot choose the tenant or channel part."""
        return f"{self.tenant.id}:{self.channel}:{self.user_key}"

    def rasa_metadata(self) -> dict[str, Any]:
        # Ours last, so a client cannot override the tenant or channel.
        return {
            **self.client_metadata,
            "tenant_id": self.tenant.id,
            "channel": self.channel,
            "message_id": self.message_id,
        }
