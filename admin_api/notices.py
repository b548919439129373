"""A visitor waits for a person and nobody has the inbox open: tell the shop by email.

On every `handoff.requested` event (admin_api/live.py AgentsBus hook): when the shop is inside
its opening hours (tenants/hours.py; a shop without hours is always open) and no agent or
owner has the live stream open (admin_api/live.py Presence, across replicas with Redis), mail
the shop's support_email a link to the thread (ADMIN_PUBLIC_URL, else ADMIN_URL, +
`/app/inbox#<conversation id>`). Outside opening hours the conversation waits in the queue.

Once per handoff: with Redis a `SET NX` on the handoff's id decides (every admin replica sees
the event through the relay, one sends); without Redis the event reaches exactly one admin
process (core/live.py HttpRelay posts it once), which remembers what it notified.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import UTC, datetime

from redis.exceptions import RedisError
from sanic import Sanic

from admin_api import mail
from admin_api.live import LiveHub, hub_of
from admin_api.routes.conversations import conversation_id
from core import handoffs
from core.live import LiveEvent
from core.sender_ids import NotTenantScoped, SenderId
from tenants.hours import is_open
from tenants.models import TenantRow

log = logging.getLogger(__name__)
NOTICED_PREFIX = "sb:handoff:noticed:"
NOTICED_TTL = 7 * 24 * 3600  # longer than any handoff waits in a queue
REMEMBERED = 10_000  # handoffs this process remembers having notified (no Redis)


class Notices:
    def __init__(self, app: Sanic) -> None:
        self._app = app
        self._sent: OrderedDict[int, None] = OrderedDict()

    def inbox_link(self, tenant_id: str, sender_id: str) -> str:
        settings = self._app.ctx.settings
        base = (settings.admin_public_url or settings.admin_url).rstrip("/")
        conversation = conversation_id(settings.conversation_id_key, tenant_id, sender_id)
        return f"{base}/app/inbox#{conversation}"

    async def on_event(self, event: LiveEvent) -> None:
        if event.kind != handoffs.REQUESTED:
            return
        ctx, hub = self._app.ctx, hub_of(self._app)
        settings = ctx.settings
        if not settings.smtp_url:
            return
        async with ctx.sessions() as session:
            shop = await session.get(TenantRow, event.tenant_id)
        if shop is None or not shop.support_email:
            return
        if not is_open(shop.opening_hours, datetime.fromtimestamp(event.at, UTC)):
            return  # outside opening hours it waits in the queue
        if await hub.presence.count(event.tenant_id) > 0:
            return
        handoff = await handoffs.human_owner(ctx.sessions, event.tenant_id, event.sender_id)
        handoff_id = handoff.id if handoff is not None else event.data.get("handoff_id")
        if not isinstance(handoff_id, int) or not await self._first(hub, handoff_id):
            return
        try:
            channel = SenderId.parse(event.sender_id).channel
        except NotTenantScoped:
            channel = "an unknown channel"
        reason = handoff.reason if handoff is not None else str(event.data.get("reason") or
                                                                 "asked for a person")
        try:
            await mail.send(settings, shop.support_email,
                            f"A visitor is waiting for a person at {shop.name}",
                            mail.handoff_notice_text(shop.name, channel, reason,
                                                     self.inbox_link(event.tenant_id,
                                                                     event.sender_id)))
        except mail.MailError:
            return  # logged by mail.send; the queue still shows the conversation
        log.info("handoff notice mailed", extra={"handoff_id": handoff_id})

    async def _first(self, hub: LiveHub, handoff_id: int) -> bool:
        """Whether this process is the one to notify for this handoff."""
        if hub.redis is not None:
            try:
                return bool(await hub.redis.set(f"{NOTICED_PREFIX}{handoff_id}", "1", nx=True,
                                                ex=NOTICED_TTL))
            except RedisError:
                log.warning("notice not deduplicated (Redis failed); not sent")
                return False
        if handoff_id in self._sent:
            return False
        self._sent[handoff_id] = None
        while len(self._sent) > REMEMBERED:
            self._sent.popitem(last=False)
        return True


def install(app: Sanic) -> None:
    """Hook the notices to the live bus (after admin_api/live.py made it)."""

    @app.before_server_start
    async def hook_notices(app: Sanic) -> None:
        if getattr(app.ctx, "notices", None) is None:  # once per app, like its hub
            app.ctx.notices = Notices(app)
            hub_of(app).bus.hooks.append(app.ctx.notices.on_event)
