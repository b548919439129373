"""What a provider's sender implements, and the errors that tell the outbox whether to retry.

A sender knows one provider's wire format and nothing else: `render` turns the bot's replies
into the provider messages to send (text for the channel, split by the channel's rules, a
template outside WhatsApp's window), `deliver` makes one provider call for one of them and
returns the provider's message id. When to send, retries with backoff, which parts already
went out, delivery records and the WhatsApp window live in the outbox (connectors/outbox.py),
the same for every provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tenants import Tenant

Part = TypeVar("Part")


@dataclass(frozen=True)
class Reply:
    """The bot's messages (Rasa REST dicts: text, buttons, image, custom) for one question."""

    question: str | None
    messages: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class OutboundContext:
    tenant: Tenant
    # This provider's decrypted section of the shop's credentials, and the visitor's address on
    # the channel (the inbound user_key): neither belongs in a repr (a log line, a traceback).
    credentials: Mapping[str, Any] = field(repr=False)
    to: str = field(repr=False)
    # From the InboundMessage (thread ids, the visitor's own address again): not in a repr.
    reply_context: Mapping[str, str] = field(default_factory=dict, repr=False)
    window_open: bool = True  # WhatsApp: inside the 24 h customer-service window
    status_callback_url: str | None = None  # where the provider reports delivery (Twilio)


class Sender(Protocol[Part]):
    """One provider's sending side. Implementations: connectors/channels/*/sender.py."""

    def render(self, context: OutboundContext, replies: Sequence[Reply]) -> list[Part]:
        """The provider messages that carry `replies`, in order ([] when there is nothing to
        say). Raises PermanentSendError when nothing may be sent (no template outside the
        WhatsApp window, incomplete credentials)."""
        ...

    async def deliver(self, context: OutboundContext, part: Part) -> str:
        """Send one of them; return the provider's message id. One attempt: raises
        TransientSendError (worth retrying) or PermanentSendError."""
        ...


class SendError(Exception):
    """A send failed. `transient` ones (timeouts, 429, 5xx) are retried with backoff."""

    transient = False

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code  # the provider's error code when it gave one ("21211", "470", ...)


class TransientSendError(SendError):
    transient = True


class PermanentSendError(SendError):
    """Retrying will not help: bad number, no template outside the 24 h window, auth."""
