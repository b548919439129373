"""The audit log: who changed what and when, with before and after (secrets never written)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from admin_api.api import Call
from admin_api.tables import AuditRow
from core.db import utcnow


async def record(call: Call[Any, Any], action: str, *, target: str | None = None,
                 before: dict[str, Any] | None = None,
                 after: dict[str, Any] | None = None) -> None:
    """Append one entry for the calling principal's shop. Callers pass only non-secret fields
    (a channel's credentials appear as the names of the fields that changed)."""
    async with call.ctx.sessions() as session:
        await session.execute(insert(AuditRow).values(
            tenant_id=call.principal.tenant_id, actor=call.principal.actor, action=action,
            target=target, before=before, after=after, created_at=utcnow()))
        await session.commit()
