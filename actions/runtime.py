"""Heavy shared objects of the action server, built once per process on first use.

Actions are instantiated by rasa-sdk's executor without arguments, so they reach the database,
tenant resolver and order backends through `runtime()`, a cached factory, never globals that
carry tenant data.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from actions.commerce.base import BackendNotConfigured, Order, OrderBackend
from actions.commerce.demo_store import DemoStoreBackend
from core import heap
from core.db import create_engine, session_factory
from core.live import HttpRelay, Publisher, publisher
from core.settings import Settings
from tenants import Tenant, TenantResolver
from tenants.crypto import CredentialsBox

if TYPE_CHECKING:
    from actions.attempts import Attempts
    from billing.account import Accounts
    from knowledge.answers import KnowledgeAnswers

log = logging.getLogger(__name__)

# Shops' indexes loaded at start, the most recently built first: each stays in memory from then
# on (the demo shop's 172 chunks: ~1 MB and 0.5-0.9 s to load), so a deployment of many shops
# loads the others at their first question, as before.
WARM_INDEXES = 50


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker
    tenants: TenantResolver
    credentials: CredentialsBox
    _http: httpx.AsyncClient | None = None
    _live_redis: Redis | None = None
    # tenant id -> (backend kind and credentials fingerprint, client)
    _backends: dict[str, tuple[str, OrderBackend]] = field(default_factory=dict)
    # A form verifies an order and its submit action reads it again a moment later; within
    # this many seconds the second read is served from memory instead of the shop's API.
    order_ttl: float = 30.0
    _orders: dict[tuple[str, str, str], tuple[float, Order]] = field(default_factory=dict)
    _knowledge_loading: asyncio.Future[KnowledgeAnswers] | None = None

    async def find_order(self, tenant: Tenant, number: str, email: str) -> Order | None:
        """The tenant's order if `email` matches it (see OrderBackend.find_order)."""
        key = (tenant.id, number, email.strip().lower())
        now = time.monotonic()
        hit = self._orders.get(key)
        if hit and now - hit[0] < self.order_ttl:
            return hit[1]
        order = await self.backend_for(tenant).find_order(number, email)
        if order is not None:
            if len(self._orders) > 10_000:  # bound memory: drop the oldest half
                for stale in sorted(self._orders, key=lambda k: self._orders[k][0])[:5_000]:
                    del self._orders[stale]
            self._orders[key] = (now, order)
        return order

    @property
    def http(self) -> httpx.AsyncClient:
        # Created lazily so that it binds to the action server's running event loop. Shops'
        # order backends are at URLs their owners name: public addresses only, unless
        # ALLOW_PRIVATE_DESTINATIONS (core/destinations.py).
        if self._http is None:
            self._http = self.settings.destinations.client(
                timeout=httpx.Timeout(5.0, connect=3.0),
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            )
        return self._http

    @functools.cached_property
    def knowledge(self) -> KnowledgeAnswers:
        """Grounded answers from the tenants' knowledge bases (loads the embedding model)."""
        from knowledge.answers import KnowledgeAnswers
        from knowledge.budget import LlmBudget
        from knowledge.cache import MemoryAnswerCache, RedisAnswerCache
        from knowledge.claude import ClaudeAnswerer
        from knowledge.embeddings import get_embedder
        from knowledge.index import IndexFiles
        from knowledge.metrics import LLM_CONFIGURED
        from knowledge.retrieval import Retriever

        s = self.settings
        retriever = Retriever(IndexFiles(s.knowledge_dir), self.sessions,
                              get_embedder(s.embed_precision))
        cache = RedisAnswerCache(s.redis_url) if s.redis_url else MemoryAnswerCache()
        llm = (ClaudeAnswerer(s.anthropic_api_key.reveal(), s.anthropic_base_url,
                              timeout=s.llm_timeout,
                              budget=LlmBudget(self.sessions, plan_limit=self.plan_tokens))
               if s.anthropic_api_key else None)
        LLM_CONFIGURED.set(1 if llm else 0)
        log.info("knowledge answers ready", extra={
            "mode": "llm" if llm else "extractive (no ANTHROPIC_API_KEY)",
            "cache": "redis" if s.redis_url else "memory"})
        return KnowledgeAnswers(retriever, cache, llm)

    async def knowledge_answers(self) -> KnowledgeAnswers:
        """`knowledge`, built in a worker thread: its imports alone take seconds (anthropic's
        2-10 s on these machines), which on the event loop would hold every conversation.
        A caller that comes while it is being built (by `warm_knowledge`, or another question)
        waits for that same build."""
        if "knowledge" in self.__dict__:
            return self.knowledge
        loading = self._knowledge_loading
        if loading is None:
            loading = self._knowledge_loading = asyncio.ensure_future(
                asyncio.to_thread(lambda: self.knowledge))
        try:
            return await asyncio.shield(loading)  # one caller's cancellation stops no other
        except Exception:
            if self._knowledge_loading is loading:  # the next caller tries again
                self._knowledge_loading = None
            raise

    async def warm_knowledge(self, limit: int = WARM_INDEXES) -> None:
        """Load what a shop's first knowledge question would otherwise wait for (~10 s after
        `make run`): the knowledge runtime, the embedder's question encoder, then the indexes of
        the `limit` shops whose index was built last, each searched once (its question
        rewriter and word lists are built on the first search). Off the event loop; questions
        that arrive meanwhile wait for the same loads (IndexFiles.load and the encoder hold a
        lock while they load), and a shop whose index fails to load is left to its first
        question."""
        started = time.perf_counter()
        retriever = (await self.knowledge_answers()).retriever
        await asyncio.to_thread(retriever.embedder.encode_query, "warm up")
        runtime_ms = round((time.perf_counter() - started) * 1000)
        tenant_ids = await asyncio.to_thread(retriever.index_files.tenants, limit + 1)
        loaded = 0
        for tenant_id in tenant_ids[:limit]:
            try:
                ranking = await asyncio.to_thread(retriever.ranking, tenant_id, "warm up")
            except Exception:  # noqa: BLE001 - its first question loads it, or says why
                log.exception("index not warmed", extra={"tenant_id": tenant_id})
                continue
            loaded += ranking.version is not None  # None: unreadable (IndexFiles.load logs it)
        log.info("knowledge warmed", extra={
            "ms": round((time.perf_counter() - started) * 1000), "runtime_ms": runtime_ms,
            "indexes": loaded, "more_not_warmed": len(tenant_ids) > limit})

    @functools.cached_property
    def billing(self) -> Accounts:
        """Shops' plans (billing/); every shop unlimited when billing is off."""
        from billing.account import Accounts
        from billing.plans import billing_enabled, pricing

        s = self.settings
        return Accounts(self.sessions, pricing(s) if billing_enabled(s) else None,
                        timedelta(days=s.billing_grace_days))

    async def plan_tokens(self, tenant_id: str) -> int | None:
        """The LLM tokens a month the shop's plan allows (None: no limit, or billing off);
        knowledge/budget.py takes the smaller of this and the shop's own budget."""
        if not self.billing.enabled:
            return None
        try:
            return (await self.billing.cached(tenant_id)).plan.limits.llm_tokens_per_month
        except (SQLAlchemyError, OSError):  # the shop's own budget still applies
            log.warning("plan's token limit unreadable", extra={"tenant_id": tenant_id})
            return None

    @functools.cached_property
    def live(self) -> Publisher:
        """Live events for the agents' pages (a handoff was requested): over Redis when
        configured, else posted to the admin service's loopback route (core/live.py)."""
        s = self.settings
        redis = Redis.from_url(s.redis_url) if s.redis_url else None
        self._live_redis = redis
        return publisher(redis, s.admin_url, s.internal_token.reveal())

    @functools.cached_property
    def attempts(self) -> Attempts:
        """Failed verifications across senders and sessions (Redis when configured)."""
        from redis.asyncio import Redis

        from actions.attempts import Attempts, derive_key

        s = self.settings
        return Attempts(self.sessions, derive_key(s.credentials_key.reveal()),
                        Redis.from_url(s.redis_url) if s.redis_url else None)

    async def aclose(self) -> None:
        """Close what this runtime opened (tests build and drop several per process)."""
        if self._http is not None:
            await self._http.aclose()
        live = self.__dict__.get("live")
        if isinstance(live, HttpRelay):
            await live.aclose()
        if self._live_redis is not None:
            await self._live_redis.aclose()
        attempts = self.__dict__.get("attempts")
        if attempts is not None:
            await attempts.aclose()
        await self.engine.dispose()

    def backend_for(self, tenant: Tenant) -> OrderBackend:
        """The tenant's order backend, cached per tenant while its kind and credentials stay
        the same: new credentials set through the admin API reach the next lookup once the
        tenant resolver has the new row (tenants/resolver.py refreshes it within 30 s)."""
        blob = tenant.credentials_encrypted or b""
        version = f"{tenant.order_backend}:{hashlib.sha256(blob).hexdigest()[:16]}"
        cached = self._backends.get(tenant.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        backend = self._build_backend(tenant)
        self._backends[tenant.id] = (version, backend)
        return backend

    def _build_backend(self, tenant: Tenant) -> OrderBackend:
        if tenant.order_backend == "demo":
            return DemoStoreBackend(self.sessions, tenant.id)
        creds = self.credentials.open(tenant.credentials_encrypted)
        try:
            if tenant.order_backend == "shopify":
                from actions.commerce.shopify import ShopifyBackend

                section = creds["shopify"]
                return ShopifyBackend(
                    section["shop_url"],
                    section["access_token"],
                    section.get("api_version", "2024-10"),
                    client=self.http,
                )
            if tenant.order_backend == "woocommerce":
                from actions.commerce.woocommerce import WooCommerceBackend

                section = creds["woocommerce"]
                return WooCommerceBackend(
                    section["store_url"],
                    section["consumer_key"],
                    section["consumer_secret"],
                    client=self.http,
                )
        except KeyError as exc:
            raise BackendNotConfigured(
                f"tenant {tenant.slug}: {tenant.order_backend} credentials lack {exc}"
            ) from None
        raise BackendNotConfigured(
            f"tenant {tenant.slug}: unknown backend {tenant.order_backend!r}")


def warm_when_started(app: Any) -> None:
    """Warm the knowledge runtime (`Runtime.warm_knowledge`) in the background once the action
    server has started, so the first visitor's question is as fast as later ones; turns that
    need no knowledge (order status, returns) are served meanwhile."""

    async def start_warming(app: Any) -> None:
        app.ctx.warming = asyncio.create_task(_warm(runtime()), name="warm-knowledge")

    async def stop_warming(app: Any) -> None:
        warming = getattr(app.ctx, "warming", None)
        if warming is not None and not warming.done():
            warming.cancel()

    app.register_listener(start_warming, "after_server_start")
    app.register_listener(stop_warming, "before_server_stop")


async def _warm(rt: Runtime) -> None:
    try:
        await rt.warm_knowledge()
    except Exception:  # noqa: BLE001 - the first question loads it then, and logs why it fails
        log.exception("knowledge runtime failed to load")
        return
    heap.settle("knowledge warmed")  # what was just loaded lives as long as the process


@functools.lru_cache(maxsize=1)
def action_settings() -> Settings:
    """The action server's settings, read from the environment once per process."""
    return Settings.from_env()


@functools.lru_cache(maxsize=1)
def runtime() -> Runtime:
    settings = action_settings()
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    log.info("action runtime ready", extra={"embedded": settings.uses_embedded_storage})
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        tenants=TenantResolver(sessions),
        credentials=CredentialsBox(settings.credentials_key.reveal()),
    )
