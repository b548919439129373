"""The questions a shop's bot could not handle in a period, grouped into topics, kept on the app.

Grouping embeds up to clusters.CAP texts (seconds the first time), so its result is kept per
shop and period for CACHE_SECONDS: a designer paging through the charts or the gaps does not
pay for it twice, and new questions show within a minute or so. A caller waits at most as
long as it chooses (`grouped`'s `wait`); past that it answers "not ready" while the grouping
goes on in the background, and asks again. The analytics routes (`GET /analytics/summary`,
`GET /analytics/unanswered`) and gap mining (`GET /gaps`, admin_api/routes/gaps.py) read the
same entries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from admin_api import analytics, clusters
from admin_api.api import Call
from admin_api.errors import Unavailable

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
CACHE_ENTRIES = 256
_CACHE = "analytics_clusters"
_RUNNING = "analytics_grouping"


@dataclass(frozen=True)
class Grouped:
    at: float  # time.monotonic() when grouped
    grouped: int  # how many of the latest questions were grouped
    found: list[clusters.Cluster]
    # clusters.fold_key(text) -> the intents NLU gave its turns (gap mining's suggestion)
    intents: dict[str, Counter[str]] = field(default_factory=dict)


Key = tuple[str, analytics.Period]


async def _group(call: Call[Any, Any], key: Key) -> Grouped:
    """Fetch the period's latest unanswered questions, group them, keep the result."""
    shop, period = key
    turns = await analytics.unanswered_turns(call.ctx.sessions, shop, period, clusters.CAP)
    found = await clusters.group_questions([said for said, _ in turns])
    intents: dict[str, Counter[str]] = {}
    for said, intent in turns:
        votes = intents.setdefault(clusters.fold_key(said), Counter())
        if intent:
            votes[intent] += 1
    entry = Grouped(time.monotonic(), len(turns), found, intents)
    cache = _state(call, _CACHE)
    if len(cache) >= CACHE_ENTRIES:
        cache.pop(next(iter(cache)))
    cache[key] = entry
    return entry


async def grouped(call: Call[Any, Any], period: analytics.Period,
                  wait: float | None) -> Grouped | None:
    """The shop's topics for the period: from the cache when fresh, else grouped now, waiting
    at most `wait` seconds (None: until done). None when not ready yet (or the grouping failed
    and the caller does not wait); `Unavailable` when it failed and the caller waited."""
    key: Key = (call.shop, period)
    entry: Grouped | None = _state(call, _CACHE).get(key)
    if entry is not None and time.monotonic() - entry.at <= CACHE_SECONDS:
        return entry
    running: dict[Key, asyncio.Task[Grouped]] = _state(call, _RUNNING)
    task = running.get(key)
    if task is None:
        task = asyncio.create_task(_group(call, key))
        running[key] = task  # held here so it is not collected while it runs
        task.add_done_callback(lambda done: _finished(running, key, done))
    try:
        return await asyncio.wait_for(asyncio.shield(task), wait)
    except TimeoutError:
        return None
    except Exception:
        log.exception("grouping the unanswered questions failed")
        if wait is None:
            raise Unavailable("the questions could not be grouped; try again") from None
        return None


def cached(call: Call[Any, Any]) -> list[Grouped]:
    """The shop's grouped periods still held (whatever their age), newest first."""
    entries = [entry for (shop, _), entry in _state(call, _CACHE).items() if shop == call.shop]
    return sorted(entries, key=lambda entry: -entry.at)


def _finished(running: dict[Key, asyncio.Task[Grouped]], key: Key,
              task: asyncio.Task[Grouped]) -> None:
    running.pop(key, None)
    if not task.cancelled() and task.exception() is not None:  # nobody may be waiting
        log.warning("grouping the unanswered questions failed", exc_info=task.exception())


def _state(call: Call[Any, Any], name: str) -> Any:
    # On the app, not the module: apps (tests) over other databases share nothing.
    ctx = call.ctx
    if not hasattr(ctx, name):
        setattr(ctx, name, {})
    return getattr(ctx, name)
