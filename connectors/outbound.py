"""What a channel's sender implements, and the errors that tell the pipeline whether to retry.

A sender does one attempt: it renders the bot's answers for its channel, calls the provider
once and returns the provider's message ids. Retries with backoff, delivery records and the
choice of when to send live in the pipeline (connectors/pipeline.py), the same for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

from tenants import Tenant


@dataclass(frozen=True)
class Answer:
    """The bot's messages (Rasa REST dicts: text, buttons, image, custom) for one question."""

    question: str | None
    messages: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class OutboundContext:
    tenant: Tenant
    credentials: Mapping[str, Any]  # this channel's decrypted section of the tenant credentials
    to: str  # the visitor's address on the channel (the inbound user_key)
    reply_context: Mapping[str, str] = field(default_factory=dict)  # from the InboundMessage
    window_open: bool = True  # WhatsApp: inside the 24 h customer-service window
    status_callback_url: str | None = None  # where the provider reports delivery (Twilio)


class Sender(Protocol):
    provider: str  # "twilio", "meta", "smtp"

    async def send(self, context: OutboundContext, answers: Sequence[Answer],
                   skip: int = 0) -> list[str]:
        """Deliver the answers; return the provider's message ids (one per message sent).

        A long answer may go out as several provider messages. `skip` is how many of them an
        earlier attempt already sent (a retry must not send them again); a failure part-way
        reports the ids it did send in `SendError.sent`.
        """
        ...


class SendError(Exception):
    """A send failed. `transient` ones (timeouts, 429, 5xx) are retried with backoff."""

    transient = False

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code  # the provider's error code when it gave one ("21211", "470", ...)
        self.sent: list[str] = []  # parts that went out before this failure


class TransientSendError(SendError):
    transient = True


class PermanentSendError(SendError):
    """Retrying will not help: bad number, no template outside the 24 h window, auth."""


async def send_parts(parts: Sequence[str], send_one: Callable[[str], Awaitable[str]],
                     skip: int = 0) -> list[str]:
    """Send `parts[skip:]` in order; on failure, the error carries the ids already sent."""
    ids: list[str] = []
    for part in parts[skip:]:
        try:
            ids.append(await send_one(part))
        except SendError as exc:
            exc.sent = ids
            raise
    return ids
