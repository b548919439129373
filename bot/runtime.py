"""One bot runtime, many models: the base model every shop shares and shops' own trained
versions, each a Rasa `Agent`, in one Rasa server process; every turn goes to its shop's.

Rasa's server keeps one agent as `app.ctx.agent`; every channel and API route reads it at call
time. `ShopRouter` takes that place (bot/serve.py installs it when Rasa has loaded the base):

- a message (`handle_message`, how every channel hands one over) goes to the agent of the shop
  named in its sender id ("{shop}:{channel}:{user}", core/sender_ids.py);
- Rasa's HTTP API routes under /conversations/{conversation_id}/ use the agent of that
  conversation's shop; /model/parse takes `?shop=<id>`; anything else gets the base. A request
  middleware puts the shop in a context variable for the request (`current_shop`).

Which version a shop uses comes from the shop models' directory (bot/shop_models.py), which
the workshop writes and this process checks every POLL seconds. When a shop's version changes,
the new model loads in the background while the old one keeps answering; the shop switches in
one assignment once it is loaded. A turn already running finishes on the agent it started with;
the next one uses the new model with the same tracker, so no turn fails or is dropped. A model
that does not load (a damaged file) leaves the shop where it was and is logged.

Memory: the models of shops that had no turn for longest are dropped when the shop models'
estimated memory passes BOT_MODEL_MEMORY_MB, and loaded again by their shop's next turn (which
waits for it, about 3 s; turns of other shops go on). A model's cost is what the process's
resident memory grew by across its load, after glibc handed freed heap back (`malloc_trim`):
about 7-10 MB a model here (bench/models.py). The base is never dropped. Models load one at a
time, in a thread: a load is CPU work (~3 s), and two at once would only share the cores that
turns need. Every loaded model is settled (core/heap.py: later full garbage collections skip
it), and dropping models releases them so that the collector can free them.

Shared by every agent: the lock store (one instance) and the tracker store's database (each
agent has its own store object, a shallow copy of the base's sharing its engine: Rasa sets a
store's `domain` to its agent's, and a shop model's domain may have slots the base lacks).
Each agent has its own NLG client (bot/nlg.py): its responses' default texts are its domain's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import ctypes
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.shop_models import SHOP_ID, Registry
from core.heap import release, settle

log = logging.getLogger(__name__)

POLL = 1.0  # seconds between looks at active.json
BASE = "base"

current_shop: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "switchboard_shop", default=None)
# Set by ShopRouter.handle_message: which model answered the message (bot/channel.py reports it).
served_by: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "switchboard_model", default=None)


def shop_of(sender_id: str | None) -> str | None:
    shop = (sender_id or "").split(":", 1)[0]
    return shop if SHOP_ID.match(shop) and ":" in (sender_id or "") else None


def rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def trim_heap() -> None:
    """Hand freed heap back to the system (glibc); loading a model frees a lot (bench/models.py)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class Loaded:
    shop: str
    version: str
    agent: Any  # rasa.core.agent.Agent
    cost_mb: float
    used_at: float


class AgentFactory:
    """Loads shop models as agents sharing the base agent's stores and endpoints."""

    def __init__(self, base: Any, endpoints: Any) -> None:
        self.base = base
        self.endpoints = endpoints
        store = base.tracker_store
        self._tracker_store = getattr(store, "_tracker_store", store)  # inside FailSafe

    def load(self, model: Path) -> Any:
        from rasa.core.agent import Agent

        return Agent.load(
            str(model),
            generator=self.endpoints.nlg if self.endpoints else None,
            tracker_store=copy.copy(self._tracker_store),
            lock_store=self.base.lock_store,
            action_endpoint=self.base.action_endpoint,
        )


class ShopRouter:
    """Stands in for Rasa's Agent (module doc); attributes it does not define come from the
    agent of the request's shop."""

    def __init__(self, base: Any, factory: AgentFactory, registry: Registry,
                 budget_mb: float) -> None:
        self.base = base
        self.factory = factory
        self.registry = registry
        self.budget_mb = budget_mb
        self.routes: dict[str, str] = {}  # shop -> the version its turns use now
        self.wanted: dict[str, str] = {}  # shop -> the version active.json names
        self.resident: OrderedDict[str, Loaded] = OrderedDict()  # version -> model, LRU first
        self._loading: dict[str, asyncio.Task[Loaded]] = {}
        self._load_lock = asyncio.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._preloading: asyncio.Task[None] | None = None
        self._switches: dict[str, asyncio.Task[None]] = {}

    # --- Rasa's Agent interface ---

    def __getattr__(self, name: str) -> Any:
        # Only called for what this class does not define: processor, domain, tracker_store,
        # lock_store, execute_action, trigger_intent, parse_message, ...
        return getattr(self.agent_for_request(), name)

    def is_ready(self) -> bool:
        return bool(self.base.is_ready())

    async def handle_message(self, message: Any) -> Any:
        shop = shop_of(message.sender_id)
        agent, model = await self.agent_for(shop)
        served_by.set(model)
        return await agent.handle_message(message)

    # --- routing ---

    def agent_for_request(self) -> Any:
        """The agent for the request's shop if it is resident, else the base's (HTTP API
        routes are synchronous attribute reads; `prepare` made it resident beforehand)."""
        shop = current_shop.get()
        version = self.routes.get(shop) if shop else None
        loaded = self.resident.get(version) if version else None
        if loaded is None:
            return self.base
        loaded.used_at = time.monotonic()
        self.resident.move_to_end(version)  # type: ignore[arg-type]  # not None: loaded is
        return loaded.agent

    async def prepare(self, shop: str | None) -> None:
        """Before an HTTP API request of `shop`'s: its model resident (loaded if evicted)."""
        current_shop.set(shop)
        if shop is not None:
            await self.agent_for(shop)

    async def agent_for(self, shop: str | None) -> tuple[Any, str]:
        """(agent, version or "base") that answers `shop`'s turns now."""
        version = self.routes.get(shop) if shop else None
        if version is None:
            return self.base, BASE
        loaded = self.resident.get(version)
        if loaded is None:
            try:
                loaded = await self._load(shop or "", version)
            except Exception:
                log.exception("shop %s: model %s does not load; the base model answers", shop,
                              version)
                return self.base, BASE
        loaded.used_at = time.monotonic()
        self.resident.move_to_end(version)
        return loaded.agent, version

    # --- loading and dropping ---

    async def _load(self, shop: str, version: str) -> Loaded:
        """One load per version at a time, however many turns wait for it; a waiter that is
        cancelled does not cancel the load others wait for."""
        task = self._loading.get(version)
        if task is None:
            task = asyncio.create_task(self._load_now(shop, version), name=f"load-{version}")
            self._loading[version] = task
            task.add_done_callback(lambda done: self._loaded(version, done))
        return await asyncio.shield(task)

    def _loaded(self, version: str, task: asyncio.Task[Loaded]) -> None:
        self._loading.pop(version, None)
        if not task.cancelled() and task.exception() is None:
            self._evict(keep=version)

    async def _load_now(self, shop: str, version: str) -> Loaded:
        async with self._load_lock:  # one at a time (module doc)
            known = self.resident.get(version)
            if known is not None:
                return known
            path = self.registry.model_file(shop, version)
            started, before = time.perf_counter(), rss_mb()

            def load() -> Any:
                agent = self.factory.load(path)
                trim_heap()
                return agent

            agent = await asyncio.to_thread(load)
            settle(f"shop model {version} loaded")
            cost = max(rss_mb() - before, 1.0)
            loaded = Loaded(shop, version, agent, cost, time.monotonic())
            self.resident[version] = loaded
            seconds = time.perf_counter() - started
            log.info("shop model loaded", extra={
                "shop": shop, "version": version, "seconds": round(seconds, 2),
                "cost_mb": round(cost, 1), "resident": len(self.resident),
                "resident_mb": round(self.used_mb(), 1)})
            return loaded

    def used_mb(self) -> float:
        return sum(loaded.cost_mb for loaded in self.resident.values())

    def _evict(self, keep: str) -> None:
        """Drop least recently used models until the rest fit the budget (never `keep`)."""
        dropped = False
        for version in list(self.resident):
            if self.used_mb() <= self.budget_mb:
                break
            if version != keep:
                self._drop(version)
                dropped = True
        if dropped:
            release("shop models unloaded")  # settled when they loaded: freed only now
        trim_heap()

    def _drop(self, version: str) -> None:
        gone = self.resident.pop(version)
        log.info("shop model unloaded (memory budget)", extra={
            "shop": gone.shop, "version": version, "cost_mb": round(gone.cost_mb, 1),
            "budget_mb": self.budget_mb, "resident_mb": round(self.used_mb(), 1)})

    # --- following active.json ---

    def start(self) -> None:
        """Read the mapping now (turns of shops with a version wait for its model: never the
        base's answer for a shop that has its own), load them in the background, then watch."""
        self._signature = self.registry.signature()
        self.wanted = self.registry.active()
        self.routes = dict(self.wanted)
        self._preloading = asyncio.create_task(self._preload(), name="shop-models-preload")
        self._watcher = asyncio.create_task(self._watch(), name="shop-models-watch")

    async def stop(self) -> None:
        tasks = [t for t in (self._watcher, self._preloading, *self._switches.values(),
                             *self._loading.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            try:
                signature = self.registry.signature()
                if signature != self._signature:
                    self._signature = signature
                    self.follow(self.registry.active())
            except Exception:
                log.exception("shop models: reading the active versions failed; trying again")

    def follow(self, wanted: dict[str, str]) -> None:
        """Switch every shop whose version changed (in the background for new models)."""
        self.wanted = wanted
        for shop in set(self.routes) | set(wanted):
            version = wanted.get(shop)
            if self.routes.get(shop) == version:
                continue
            previous = self._switches.pop(shop, None)
            if previous is not None:
                previous.cancel()
            if version is None:
                self.routes.pop(shop, None)
                log.info("shop %s now answered by the base model", shop)
                self._drop_unrouted()
            else:
                self._switches[shop] = asyncio.create_task(self._switch(shop, version),
                                                           name=f"switch-{shop}")

    async def _preload(self) -> None:
        """The active models, one after another, while the next fits the memory budget (as
        much again as the largest so far); the others load on their shop's first turn. Loading
        past the budget would only unload the models loaded just before, at ~3 s of CPU each."""
        started = dict(self.wanted)
        for number, (shop, version) in enumerate(started.items()):
            if version in self.resident or version != self.wanted.get(shop) \
                    or version != self.routes.get(shop):
                continue  # switched or loaded meanwhile
            largest = max((loaded.cost_mb for loaded in self.resident.values()), default=0.0)
            if self.resident and self.used_mb() + largest > self.budget_mb:
                log.info("shop models: %d loaded at start, the memory budget (%d MB) is full; "
                         "%d more load on their shop's first turn", len(self.resident),
                         self.budget_mb, len(started) - number)
                return
            with contextlib.suppress(Exception):  # logged by agent_for; turns try again
                await self.agent_for(shop)

    async def _switch(self, shop: str, version: str) -> None:
        try:
            await self._load(shop, version)
        except Exception:
            log.exception("shop %s: model %s does not load; the shop stays on %s", shop,
                          version, self.routes.get(shop, BASE))
            return
        if self.wanted.get(shop) != version:  # active.json changed again meanwhile
            return
        before = self.routes.get(shop)
        self.routes[shop] = version
        log.info("shop %s now answered by model %s (was %s)", shop, version, before or BASE)
        self._drop_unrouted()

    def _drop_unrouted(self) -> None:
        """Models no shop routes to or is switching to (a turn still running on one keeps its
        own reference)."""
        routed = set(self.routes.values()) | set(self.wanted.values())
        for version in [v for v in self.resident if v not in routed]:
            dropped = self.resident.pop(version)
            log.info("shop model unloaded (no longer active)",
                     extra={"shop": dropped.shop, "version": version})
        trim_heap()

    def describe(self) -> dict[str, Any]:
        """For the runtime's /models route (bot/channel.py): what answers whom."""
        return {
            "base": self.base.model_id,
            "shops": {shop: {"wanted": self.wanted.get(shop), "serving": self.routes.get(shop),
                             "resident": self.routes.get(shop) in self.resident}
                      for shop in sorted(set(self.routes) | set(self.wanted))},
            "resident": [{"shop": m.shop, "version": m.version, "cost_mb": round(m.cost_mb, 1)}
                         for m in self.resident.values()],
            "used_mb": round(self.used_mb(), 1), "budget_mb": self.budget_mb,
        }


# --- wiring into Rasa's server (called by bot/serve.py before Rasa's CLI runs) ---


def install(registry: Registry, budget_mb: float) -> None:
    """Make Rasa's server route by shop: once it has loaded the base agent, a ShopRouter
    takes its place, and a request middleware names each HTTP API request's shop.

    rasa/core/run.py `serve_application` looks both functions up in its module when it runs,
    so wrapping them there is enough (Rasa 3.6.21)."""
    import rasa.core.run as run

    load_base = run.load_agent_on_start
    configure = run.configure_app

    async def load_agent_on_start(model_path: Any, endpoints: Any, remote_storage: Any,
                                  app: Any, loop: Any) -> Any:
        try:
            base = await load_base(model_path, endpoints, remote_storage, app, loop)
        finally:
            settle("base model loaded")  # core/heap.py: full collections skip all of it
        router = ShopRouter(base, AgentFactory(base, endpoints), registry, budget_mb)
        router.start()
        app.ctx.agent = router
        log.info("shop models: %d shops with a model of their own, budget %d MB",
                 len(router.routes), budget_mb)
        return router

    def configure_app(*args: Any, **kwargs: Any) -> Any:
        app = configure(*args, **kwargs)
        app.register_middleware(route_by_shop, "request")
        app.register_listener(stop_router, "before_server_stop")
        return app

    run.load_agent_on_start = load_agent_on_start
    run.configure_app = configure_app


async def route_by_shop(request: Any) -> None:
    router = getattr(request.app.ctx, "agent", None)
    if not isinstance(router, ShopRouter):
        return
    shop: str | None = None
    conversation = (request.match_info or {}).get("conversation_id")
    if conversation:
        shop = shop_of(conversation)
    elif request.path == "/model/parse":
        asked = request.args.get("shop")
        shop = asked if asked and SHOP_ID.match(asked) else None
    await router.prepare(shop)  # sets the shop for this request, also None (keep-alive)


async def stop_router(app: Any, _: Any) -> None:
    router = getattr(app.ctx, "agent", None)
    if isinstance(router, ShopRouter):
        await router.stop()
