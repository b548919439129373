"""The action server's runtime on a real database (SQLite always; PostgreSQL and Redis when they
answer) with the demo shop seeded, and trackers shaped as Rasa sends them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from rasa_sdk import Tracker
from rasa_sdk.types import DomainDict
from redis.asyncio import Redis

from actions.runtime import Runtime, action_settings, runtime
from core.sender_ids import sender_id
from devtools.demo_shop import DEMO_TENANT_ID, seed_demo
from tests.conftest import services
from tests.databases import database_params, migrated_url

FORMS = {
    "order_status_form": {"required_slots": ["order_number", "email"]},
    "return_form": {"required_slots": ["order_number", "email", "return_items",
                                       "return_reason"]},
}
DOMAIN = DomainDict(intents=[], entities=[], slots={}, responses={}, actions=[], forms=FORMS)


@pytest.fixture(params=database_params())
def storage(request: pytest.FixtureRequest) -> str:
    """"sqlite" (in-process counters) or "postgresql" (with Redis when it answers)."""
    return str(request.param)


@pytest_asyncio.fixture
async def action_runtime(storage: str, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    """`runtime()` as the action server builds it from the environment, on a fresh database."""
    url = migrated_url(storage, tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SWITCHBOARD_VAR_DIR", str(tmp_path))
    redis_url = services()["redis_url"] if storage == "postgresql" else None
    if redis_url:
        monkeypatch.setenv("REDIS_URL", redis_url)
    else:
        monkeypatch.delenv("REDIS_URL", raising=False)
    action_settings.cache_clear()
    runtime.cache_clear()
    rt = runtime()
    await seed_demo(rt.sessions)
    if redis_url:  # failed verifications of earlier tests live on in Redis
        redis = Redis.from_url(redis_url)
        for pattern in ("sb:vfail:*", "sb:vlock:*"):
            async for key in redis.scan_iter(pattern):
                await redis.delete(key)
        await redis.aclose()
    try:
        yield rt
    finally:
        await rt.aclose()
        action_settings.cache_clear()
        runtime.cache_clear()


def tracker(slots: Mapping[str, Any] | None = None, *, user: str = "me", text: str = "",
            given: Mapping[str, Any] | None = None, channel: str = "rest",
            metadata: Mapping[str, Any] | None = None, active_loop: str | None = None,
            requested_slot: str | None = None) -> Tracker:
    """A tracker of the demo shop's conversation `user` on `channel`, as Rasa sends it to a
    form's validation: `slots` as they stood, then the visitor's latest message (`text`,
    `metadata`) and the slots extracted from it (`given`)."""
    now = time.time()
    all_slots: dict[str, Any] = {"tenant_id": DEMO_TENANT_ID, "requested_slot": requested_slot,
                                 **(slots or {})}
    events: list[dict[str, Any]] = [
        {"event": "slot", "name": n, "value": v, "timestamp": now - 1}
        for n, v in all_slots.items()]
    latest = {"text": text, "intent": {"name": "inform", "confidence": 1.0}, "entities": [],
              "metadata": dict(metadata or {})}
    events.append({"event": "user", "text": text, "parse_data": latest, "timestamp": now,
                   "metadata": dict(metadata or {})})
    for name, value in (given or {}).items():
        events.append({"event": "slot", "name": name, "value": value, "timestamp": now})
        all_slots[name] = value
    loop = {"name": active_loop} if active_loop else {}
    return Tracker(sender_id(DEMO_TENANT_ID, channel, user), all_slots, latest, events, False,
                   None, loop, "action_listen")
