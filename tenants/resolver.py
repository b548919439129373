"""Find a tenant by slug (public URLs) or id (sender ids), with a short in-process cache."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from tenants.models import Tenant, TenantRow

log = logging.getLogger(__name__)


class UnknownTenant(LookupError):
    """No tenant with that slug or id."""


class TenantResolver:
    """Tenants by slug or id. Settings change rarely: a tenant read in the last 30 s is served
    from memory; an older one is served too while one query in the background reads it again,
    so an edit shows up within about 30 s on every process and no request waits for the
    refresh. (When every request waited, each refresh under load queued dozens of identical
    queries behind the busy connection pool and held webhooks for over a second.) Concurrent
    misses share one query."""

    def __init__(self, sessions: async_sessionmaker, ttl_seconds: float = 30.0) -> None:
        self._sessions = sessions
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Tenant]] = {}
        self._loading: dict[str, asyncio.Task[Tenant]] = {}

    async def get(self, key: str) -> Tenant:
        """The tenant whose slug or id is `key`; raises UnknownTenant."""
        hit = self._cache.get(key)
        if hit is None:
            return await asyncio.shield(self._load(key))
        if time.monotonic() - hit[0] >= self._ttl:
            self._load(key)
        return hit[1]

    def _load(self, key: str) -> asyncio.Task[Tenant]:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._read(key))
            self._loading[key] = task
            task.add_done_callback(lambda done: self._loaded(key, done))
        return task

    def _loaded(self, key: str, task: asyncio.Task[Tenant]) -> None:
        del self._loading[key]
        if task.cancelled():
            return
        error = task.exception()  # also marks it retrieved when only a refresh wanted it
        if isinstance(error, UnknownTenant):  # deleted meanwhile: forget every name for it
            stale = self._cache.get(key)
            if stale is not None:  # its slug and its id name it; both entries go
                self._cache = {k: v for k, v in self._cache.items() if v[1].id != stale[1].id}
        elif error is not None and key in self._cache:
            log.warning("tenant not refreshed; serving the cached settings",
                        extra={"tenant": key, "error": type(error).__name__})

    async def _read(self, key: str) -> Tenant:
        now = time.monotonic()
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
