"""Shops' webhooks: the conversation event log POSTed to a shop's own servers, signed, retried,
and sent by one admin process per event.

A shop (its owner) subscribes a URL to kinds of core/handoffs.py EVENT_KINDS
(admin_api/webhook_subscriptions.py, which also reads the delivery log). Each event of
the log (`conversation_events`, append-only, id ordered) after the subscription was made gets
one delivery row per subscription that wants its kind; the admin process's dispatcher
(`Dispatcher`, started by admin_api/worker.py) POSTs it:

    POST <url>
    Content-Type: application/json
    X-Switchboard-Event: handoff.claimed
    X-Switchboard-Delivery: 812
    X-Switchboard-Signature: t=1795000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff…

    {"id": 4711, "type": "handoff.claimed", "created_at": "2026-11-28T19:00:00.123456+00:00",
     "conversation_id": "c_…", "channel": "web",
     "data": {"handoff_id": 17, "assignee": {"id": "…", "name": "Ada"}}}

`id` is the event's number (unique, increasing): a receiver that sees an id twice (a retry
after its answer was lost) ignores the second. `conversation_id` is the admin API's opaque id
(admin_api/routes/conversations.py): the visitor's phone number or email is never sent.

Verifying (Stripe's scheme): take `t` and `v1` from the header, compute the hex HMAC-SHA256 of
"<t>.<raw body>" with the subscription's secret (`whsec_…`, shown once at creation) and
compare in constant time; refuse a `t` more than 5 minutes from your clock (replays).
`verify` below does exactly that.

Delivery: a 2xx answer within TIMEOUT delivers; anything else (another status, a redirect,
no answer) is retried after 10 s, 20 s, 40 s, … (doubling, at most 3 h apart, 10 % jitter)
until GIVE_UP after the event, then the delivery is `failed`. Every try is kept
(`webhook_attempts`) for the shop's delivery log.

Where it may POST: https, or plain http to this host; never to a private network unless the
deployment allows private destinations (ALLOW_PRIVATE_DESTINATIONS: development, tests): the URL
is checked when subscribed (webhook_subscriptions.check_url) and every try connects only to a
public address its host resolves to right then (core/destinations.py `Destinations.client`).
Delivered and failed deliveries are kept KEEP for the log, then pruned (hourly).

Several admin processes: the fan-out inserts delivery rows under a unique (subscription,
event) and advances the subscription's cursor with a compare-and-set, so two processes
reading the same events store each delivery once. A process takes due deliveries with a
compare-and-set on a lease (the UPDATE's WHERE is re-checked under the row lock on
PostgreSQL; SQLite runs one writer at a time): exactly one process sends each try. If a
process dies between sending and recording, the lease expires and the event is sent again
(at least once; hence the id).

Why the cursor trails by SETTLE: ids come from a sequence, so an event with a smaller id can
commit after one with a larger id was read. The cursor moves only past events older than
SETTLE; younger ones are read again on the next pass (the unique key makes that harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api.routes.conversations import conversation_id
from admin_api.webhook_tables import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookRow,
)
from core.db import utcnow
from core.destinations import Destinations, PrivateDestination
from core.handoffs import ConversationEventRow
from core.tasks import wait_or_cancel
from tenants.crypto import CredentialsBox

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Switchboard-Signature"
TIMEOUT = 10.0  # seconds for the shop's server to answer one POST
FIRST_RETRY = timedelta(seconds=10)
LONGEST_WAIT = timedelta(hours=3)
GIVE_UP = timedelta(hours=24)
KEEP = timedelta(days=30)  # how long the delivery log keeps what ended
PRUNE_EVERY = timedelta(hours=1)
LEASE = timedelta(seconds=60)  # longer than TIMEOUT: a try is recorded well within it
SETTLE = timedelta(seconds=30)
BATCH = 100
POLL = 2.0  # seconds between passes
PARALLEL = 10  # POSTs at once per process
TOLERANCE = 300  # seconds a signature's timestamp may be off (`verify`)
ERASED = "the event was erased before it could be sent"


# -- signatures ------------------------------------------------------------------------------
def sign(secret: str, body: bytes, at: int) -> str:
    """The signature header's value for `body` sent at unix time `at`."""
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, now: float | None = None,
           tolerance: int = TOLERANCE) -> bool:
    """What a receiver does: the header's v1 is our HMAC of "t.body", t is recent."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        at = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - at) > tolerance:
        return False
    expected = sign(secret, body, at).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


# -- delivery --------------------------------------------------------------------------------
def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: 10 s doubling, at most LONGEST_WAIT."""
    wait = min(FIRST_RETRY * 2 ** min(attempts - 1, 20), LONGEST_WAIT)
    return wait + wait * random.uniform(0, 0.1)  # noqa: S311  (jitter, not a secret)


def _why(exc: httpx.HTTPError) -> str:
    """A failed try in words, without the URL (its query may hold the shop's token)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {TIMEOUT:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    return f"request failed ({type(exc).__name__})"


async def prune(sessions: async_sessionmaker, now: datetime) -> int:
    """Forget deliveries that ended (delivered or failed) more than KEEP ago, with their
    tries; returns how many. Pending ones are never pruned."""
    d = WebhookDeliveryRow
    old = select(d.id).where(d.status != PENDING, d.created_at < now - KEEP)
    async with sessions() as session:
        await session.execute(delete(WebhookAttemptRow).where(
            WebhookAttemptRow.delivery_id.in_(old)))
        gone = (await session.execute(delete(d).where(d.status != PENDING,
                                                      d.created_at < now - KEEP))).rowcount
        await session.commit()
    return int(gone or 0)


@dataclass(frozen=True)
class _Outgoing:
    delivery_id: int
    attempts: int
    created_at: datetime
    url: str
    sealed: bytes
    body: bytes
    kind: str


class Dispatcher:
    """Fans events out into deliveries and sends the due ones; one per admin process."""

    def __init__(self, sessions: async_sessionmaker, box: CredentialsBox,
                 conversation_key: bytes, *, owner: str | None = None,
                 client: httpx.AsyncClient | None = None, poll: float = POLL,
                 destinations: Destinations | None = None) -> None:
        self.sessions = sessions
        self.destinations = destinations or Destinations()
        self._pruned_at: datetime | None = None
        self.box = box
        self.conversation_key = conversation_key
        self.owner = (owner or f"webhooks:{uuid.uuid4().hex}")[:80]
        self.poll = poll
        self._client = client
        self._own_client = client is None
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No redirects: a 3xx is a failed try (a redirect could lead anywhere, unsigned);
            # public addresses only, resolved at each connection (core/destinations.py).
            self._client = self.destinations.client(
                timeout=TIMEOUT, headers={"User-Agent": "Switchboard-Webhooks/1"})
        return self._client

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run_forever(), name="webhook-dispatcher")
        return self._task

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await wait_or_cancel(self._task, timeout)
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run_forever(self) -> None:
        # Waits first: a server that starts and stops at once (Sanic's test client, around
        # every request) makes no pass at all.
        while not self._stopping:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll)
            if self._stopping:
                break
            try:
                await self.run_once()
            except Exception:
                log.exception("webhook dispatcher: a pass failed; trying again")

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass: new events into deliveries, then every due delivery tried once.
        Returns how many tries this process made."""
        now = now or utcnow()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            await prune(self.sessions, now)
        await self.fan_out(now)
        claimed = await self.claim(now)
        if not claimed:
            return 0
        gate = asyncio.Semaphore(PARALLEL)

        async def one(delivery_id: int) -> None:
            async with gate:
                try:
                    await self._try(delivery_id, now)
                except Exception:
                    log.exception("webhook delivery crashed", extra={"delivery_id": delivery_id})

        await asyncio.gather(*(one(d) for d in claimed))
        return len(claimed)

    # -- events into deliveries --------------------------------------------------------------
    async def fan_out(self, now: datetime) -> None:
        async with self.sessions() as session:
            hooks = (await session.execute(select(
                WebhookRow.id, WebhookRow.tenant_id, WebhookRow.events,
                WebhookRow.last_event_id))).all()
        for hook_id, tenant_id, kinds, cursor in hooks:
            await self._fan_out(hook_id, tenant_id, set(kinds), cursor, now)

    async def _fan_out(self, hook_id: int, tenant_id: str, kinds: set[str], cursor: int,
                       now: datetime) -> None:
        e = ConversationEventRow
        async with self.sessions() as session:
            events = (await session.execute(
                select(e.id, e.kind, e.created_at)
                .where(e.tenant_id == tenant_id, e.id > cursor)
                .order_by(e.id).limit(BATCH))).all()
            if not events:
                return
            rows = [{"webhook_id": hook_id, "tenant_id": tenant_id, "event_id": event_id,
                     "kind": kind, "status": PENDING, "attempts": 0, "created_at": created,
                     "next_attempt_at": now}
                    for event_id, kind, created in events if kind in kinds]
            if rows:
                insert = (pg_insert if session.bind.dialect.name == "postgresql"
                          else sqlite_insert)
                await session.execute(insert(WebhookDeliveryRow).on_conflict_do_nothing(),
                                      rows)
            settled = cursor
            for event_id, _, created in events:
                if created > now - SETTLE:
                    break
                settled = event_id
            if settled != cursor:
                moved = (await session.execute(
                    update(WebhookRow)
                    .where(WebhookRow.id == hook_id, WebhookRow.last_event_id == cursor)
                    .values(last_event_id=settled)
                    .execution_options(synchronize_session=False))).rowcount
                if moved != 1:  # another process read these events first
                    await session.rollback()
                    return
            await session.commit()

    # -- taking and trying -------------------------------------------------------------------
    async def claim(self, now: datetime) -> list[int]:
        """Take due deliveries for this process until LEASE from now."""
        d = WebhookDeliveryRow
        until = now + LEASE
        free = (d.status == PENDING, d.next_attempt_at <= now,
                or_(d.lease_until.is_(None), d.lease_until < now))
        async with self.sessions() as session:
            # FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): rows another
            # process is taking right now are left to it rather than waited for.
            due = list((await session.scalars(select(d.id).where(*free)
                                              .order_by(d.next_attempt_at, d.id).limit(BATCH)
                                              .with_for_update(skip_locked=True))).all())
            if not due:
                return []
            # Compare-and-set: the WHERE holds for exactly one of several processes.
            taken = list((await session.scalars(
                update(d).where(d.id.in_(due), *free)
                .values(lease_owner=self.owner, lease_until=until)
                .returning(d.id).execution_options(synchronize_session=False))).all())
            await session.commit()
        return sorted(taken)

    async def _load(self, delivery_id: int) -> _Outgoing | None:
        d, w, e = WebhookDeliveryRow, WebhookRow, ConversationEventRow
        async with self.sessions() as session:
            found = (await session.execute(
                select(d.id, d.attempts, d.created_at, w.url, w.secret_sealed, e)
                .join(w, w.id == d.webhook_id).outerjoin(e, e.id == d.event_id)
                .where(d.id == delivery_id))).first()
        if found is None:
            return None
        _, attempts, created_at, url, sealed, event = found
        if event is None:  # erased meanwhile (a visitor's erasure, retention): nothing to send
            return _Outgoing(delivery_id, attempts, created_at, url, sealed, b"", "")
        data = {k: v for k, v in (event.data or {}).items() if k != "channel"}
        body = json.dumps({
            "id": event.id, "type": event.kind, "created_at": event.created_at.isoformat(),
            "conversation_id": conversation_id(self.conversation_key, event.tenant_id,
                                               event.sender_id),
            "channel": (event.data or {}).get("channel"),
            "data": {"handoff_id": event.handoff_id, **data},
        }, separators=(",", ":"), sort_keys=True).encode()
        return _Outgoing(delivery_id, attempts, created_at, url, sealed, body, event.kind)

    async def _try(self, delivery_id: int, now: datetime) -> None:
        out = await self._load(delivery_id)
        if out is None:  # unsubscribed meanwhile
            return
        if not out.body:
            await self._record(out, now, None, ERASED, 0, final=True)
            return
        secret = str(self.box.open(out.sealed)["secret"])
        headers = {"Content-Type": "application/json", "X-Switchboard-Event": out.kind,
                   "X-Switchboard-Delivery": str(out.delivery_id),
                   SIGNATURE_HEADER: sign(secret, out.body, int(time.time()))}
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            response = await self.client.post(out.url, content=out.body, headers=headers,
                                              timeout=TIMEOUT)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"answered HTTP {status}" + (" (redirects are not followed)"
                                                     if 300 <= status < 400 else "")
        except httpx.HTTPError as exc:
            error = _why(exc)
        except httpx.InvalidURL:  # not an HTTPError; check_url should have refused it
            error = "the URL cannot be requested"
        except PrivateDestination:
            error = "the URL's host resolves to a private network address"
        took = int((time.monotonic() - started) * 1000)
        await self._record(out, now, status, error, took)

    async def _record(self, out: _Outgoing, now: datetime, status: int | None,
                      error: str | None, took: int, *, final: bool = False) -> None:
        number = out.attempts + 1
        values: dict[str, Any] = {"attempts": number, "last_status": status, "error": error,
                                  "last_attempt_at": now, "lease_owner": None,
                                  "lease_until": None}
        if error is None:
            values |= {"status": DELIVERED, "delivered_at": now}
        else:
            retry_at = now + backoff(number)
            if final or retry_at > out.created_at + GIVE_UP:
                values |= {"status": FAILED}
            else:
                values |= {"next_attempt_at": retry_at}
        d = WebhookDeliveryRow
        async with self.sessions() as session:
            session.add(WebhookAttemptRow(delivery_id=out.delivery_id, number=number,
                                          http_status=status, error=error, duration_ms=took,
                                          at=now))
            changed = (await session.execute(
                update(d).where(d.id == out.delivery_id, d.lease_owner == self.owner)
                .values(**values).execution_options(synchronize_session=False))).rowcount
            if changed != 1:  # unsubscribed, or the lease was lost: the try stays unrecorded
                await session.rollback()
                return
            await session.commit()
        extra = {"delivery_id": out.delivery_id, "kind": out.kind, "attempt": number,
                 "http_status": status, "duration_ms": took}
        if error is None:
            log.info("webhook delivered", extra=extra)
        else:
            log.info("webhook try failed", extra={**extra, "error": error,
                                                  "status": values.get("status", PENDING)})
