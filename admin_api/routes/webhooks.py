"""The shop's webhooks (owners): subscribe a URL to conversation events, list, delete, and read
each one's delivery log. admin_api/webhooks.py says what is sent, how it is signed and retried.

The signing secret is answered once, by the POST that creates the subscription; it is stored
sealed with the credentials key and never answered, audited or logged again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from admin_api import webhook_subscriptions as hooks
from admin_api.api import API, Call, Model, Page, PageQuery
from admin_api.audit import record
from admin_api.errors import Conflict, NotFound, Unprocessable
from admin_api.principal import OWNERS

EventKind = Literal["handoff.requested", "handoff.claimed", "handoff.transferred",
                    "handoff.resolved", "satisfaction.given"]  # core/handoffs.py EVENT_KINDS


class NewWebhook(Model):
    url: str = Field(min_length=1, max_length=2048,
                     description="https URL the events are POSTed to (plain http only to this "
                                 "host, for development)")
    events: list[EventKind] = Field(min_length=1, max_length=5,
                                    description="the kinds of event to send")


class WebhookOut(Model):
    id: int
    url: str
    events: list[str]
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, found: hooks.Subscription) -> WebhookOut:
        return cls(id=found.id, url=found.url, events=found.events,
                   created_by=found.created_by, created_at=found.created_at)


class CreatedWebhookOut(WebhookOut):
    secret: str = Field(description="the signing secret (whsec_…); shown once. Each POST "
                                    "carries X-Switchboard-Signature: t=<unix time>,v1=<hex "
                                    "HMAC-SHA256 of '<t>.<raw body>' with this secret>")


class AttemptOut(Model):
    number: int
    at: datetime
    http_status: int | None = Field(description="what the server answered; null: no answer")
    error: str | None
    duration_ms: int


class DeliveryOut(Model):
    id: int
    event_id: int = Field(description="the event's id, also the payload's `id`")
    kind: str
    status: str = Field(description="pending: not yet answered 2xx, retried with backoff; "
                                    "delivered; failed: given up 24 hours after the event")
    attempts: int
    last_status: int | None = Field(description="the HTTP status of the last try")
    error: str | None = Field(description="why the last try failed")
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="when it is tried next (pending)")
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    tries: list[AttemptOut] = Field(description="every try, oldest first")


def _id(call: Call[Any, Any]) -> int:
    raw = call.path["webhook_id"]
    if not raw.isdigit() or len(raw) > 12:
        raise NotFound("no such webhook in your shop")
    return int(raw)


@API.route("GET", "/webhooks", roles=OWNERS, query=PageQuery, response=Page[WebhookOut],
           summary="List the shop's webhooks")
async def list_webhooks(call: Call[None, PageQuery]) -> Page[WebhookOut]:
    found = await hooks.subscriptions(call.ctx.sessions, call.shop)
    chosen = found[call.query.offset:call.query.offset + call.query.page_size]
    return Page[WebhookOut](items=[WebhookOut.of(s) for s in chosen], total=len(found),
                            page=call.query.page, page_size=call.query.page_size)


@API.route("POST", "/webhooks", roles=OWNERS, body=NewWebhook, response=CreatedWebhookOut,
           status=201, errors=(409,), summary="Subscribe a URL to conversation events")
async def create_webhook(call: Call[NewWebhook, None]) -> CreatedWebhookOut:
    """Events from now on (handoffs requested, claimed, transferred, resolved; ratings) are
    POSTed to the URL as JSON, signed with the secret this answer shows once, retried with
    backoff for 24 hours until the server answers 2xx."""
    try:
        # Public addresses only, unless the deployment allows private destinations
        # (ALLOW_PRIVATE_DESTINATIONS: development, tests; core/destinations.py).
        url = hooks.check_url(call.body.url, call.ctx.settings.destinations)
    except hooks.BadUrl as exc:
        raise Unprocessable(str(exc)) from None
    try:
        created, secret = await hooks.subscribe(call.ctx.sessions, call.ctx.box, call.shop,
                                                url, call.body.events, call.principal.actor)
    except hooks.TooManyWebhooks as exc:
        raise Conflict(str(exc)) from None
    await record(call, "webhook.create", target=str(created.id),
                 after={"url": created.url, "events": created.events})
    return CreatedWebhookOut(**WebhookOut.of(created).model_dump(), secret=secret)


@API.route("DELETE", "/webhooks/{webhook_id}", roles=OWNERS, response=WebhookOut,
           summary="Delete a webhook")
async def delete_webhook(call: Call[None, None]) -> WebhookOut:
    """Nothing more is sent to its URL; its pending deliveries and its log go with it."""
    try:
        gone = await hooks.unsubscribe(call.ctx.sessions, call.shop, _id(call))
    except hooks.NoSuchWebhook as exc:
        raise NotFound(str(exc)) from None
    await record(call, "webhook.delete", target=str(gone.id),
                 before={"url": gone.url, "events": gone.events})
    return WebhookOut.of(gone)


@API.route("GET", "/webhooks/{webhook_id}/deliveries", roles=OWNERS, query=PageQuery,
           response=Page[DeliveryOut], summary="List a webhook's deliveries")
async def list_webhook_deliveries(call: Call[None, PageQuery]) -> Page[DeliveryOut]:
    """The latest events first: whether each was delivered, and every try's answer."""
    try:
        found, total = await hooks.deliveries(call.ctx.sessions, call.shop, _id(call),
                                              call.query.offset, call.query.page_size)
    except hooks.NoSuchWebhook as exc:
        raise NotFound(str(exc)) from None
    return Page[DeliveryOut](items=[DeliveryOut(
        id=d.id, event_id=d.event_id, kind=d.kind, status=d.status,
        attempts=d.attempts, last_status=d.last_status, error=d.error,
        created_at=d.created_at, next_attempt_at=d.next_attempt_at,
        last_attempt_at=d.last_attempt_at, delivered_at=d.delivered_at,
        tries=[AttemptOut(number=a.number, at=a.at, http_status=a.http_status, error=a.error,
                          duration_ms=a.duration_ms) for a in d.tries]) for d in found],
        total=total, page=call.query.page, page_size=call.query.page_size)
