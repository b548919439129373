"""Find a tenant by slug (public URLs) or id (sender ids), with a short in-process cache."""

from __future__ import annotations

import time

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from tenants.models import Tenant, TenantRow


class UnknownTenant(LookupError):
    """No tenant with that slug or id."""


class TenantResolver:
    # Settings change rarely; 30 s keeps per-turn lookups off the database while an edit
    # still shows up quickly on every process.
    def __init__(self, sessions: async_sessionmaker, ttl_seconds: float = 30.0) -> None:
        self._sessions = sessions
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Tenant]] = {}

    async def get(self, key: str) -> Tenant:
        """The tenant whose slug or id is `key`; raises UnknownTenant."""
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(TenantRow).where(or_(TenantRow.slug == key, TenantRow.id == key))
                )
            ).scalar_one_or_none()
        if row is None:
            raise UnknownTenant(key)
        tenant = Tenant.from_row(row)
        self._cache[tenant.slug] = (now, tenant)
        self._cache[tenant.id] = (now, tenant)
        return tenant
