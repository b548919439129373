"""Turn slots to Rasa shared fairly between shops.

The gateway sends at most MAX_TURNS_IN_FLIGHT turns to Rasa at once (connectors/rasa_client.py
says why). With one queue for all shops, a shop whose visitors (or a script) send hundreds of
turns fills every slot and every other shop's turn waits behind them. Here:

- a shop holds at most PER_SHOP of the slots (24 of 32): a quarter is always left for the
  others, so another shop's turn starts at once even while one shop is at its limit;
- turns that must wait queue per shop, and a freed slot goes to the next shop in turn
  (round-robin over shops with waiting turns, first come first served within a shop): two busy
  shops get half each, a third that arrives gets a third at the next release, however long the
  first two's queues are.

A shop alone uses up to PER_SHOP slots; Rasa works through a few turns at a time anyway, so the
eight it may not take cost it no throughput (bench/channels.py at 200 visitors of one shop).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator


class FairSlots:
    def __init__(self, total: int, per_shop: int) -> None:
        self.total = total
        self.per_shop = min(per_shop, total)
        self.in_flight: Counter[str] = Counter()
        self._busy = 0
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._turn_order: deque[str] = deque()  # shops with waiting turns, next first

    @contextlib.asynccontextmanager
    async def slot(self, shop: str) -> AsyncIterator[None]:
        await self.acquire(shop)
        try:
            yield
        finally:
            self.release(shop)

    def waiting(self, shop: str) -> int:
        return len(self._waiting.get(shop, ()))

    async def acquire(self, shop: str) -> None:
        if self._busy < self.total and self.in_flight[shop] < self.per_shop \
                and not self._waiting.get(shop):
            self._grant(shop)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(shop, deque())
        queue.append(future)
        if shop not in self._turn_order:
            self._turn_order.append(shop)
        try:
            await future
        except BaseException:  # cancelled (a timeout): give back what it may have been given
            if future.done() and not future.cancelled():
                self.release(shop)
            else:
                future.cancel()
                self._forget(shop, future)
            raise

    def release(self, shop: str) -> None:
        self.in_flight[shop] -= 1
        if not self.in_flight[shop]:
            del self.in_flight[shop]
        self._busy -= 1
        self._hand_out()

    def _grant(self, shop: str) -> None:
        self.in_flight[shop] += 1
        self._busy += 1

    def _hand_out(self) -> None:
        """Free slots to waiting turns, one shop after the other."""
        skipped = 0
        while self._busy < self.total and self._turn_order and skipped < len(self._turn_order):
            shop = self._turn_order[0]
            self._turn_order.rotate(-1)  # whoever is served goes to the back
            if self.in_flight[shop] >= self.per_shop:
                skipped += 1
                continue
            skipped = 0
            queue = self._waiting[shop]
            future = queue.popleft()
            if not queue:
                self._forget(shop, None)
            self._grant(shop)
            future.set_result(None)

    def _forget(self, shop: str, future: asyncio.Future[None] | None) -> None:
        queue = self._waiting.get(shop)
        if queue is not None and future is not None:
            with contextlib.suppress(ValueError):
                queue.remove(future)
        if not queue:
            self._waiting.pop(shop, None)
            with contextlib.suppress(ValueError):
                self._turn_order.remove(shop)
