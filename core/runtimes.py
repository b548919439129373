"""Which bot runtime serves a shop, when several run side by side (issue 15): consistent hashing.

Each runtime (bot/runtime.py: one Rasa server holding the base model and shops' own models)
keeps the models of the shops it served lately, under its memory budget. Sending all of a
shop's turns to the same runtime keeps its model loaded in one place instead of in all of them.
`RASA_URL` lists the runtimes, comma-separated; every caller (the gateway's turns, the admin
service's tracker events) builds the same ring from it and so picks the same runtime for a shop.

The ring: each runtime owns POINTS points on a circle of 2^64 (SHA-256 of "<url>#<i>"); a shop
goes to the owner of the first point at or after its own hash. Adding or removing one runtime
of n moves about 1/n of the shops, and only to or from that runtime; the others keep their
shops and their loaded models. Correctness never depends on it: every runtime can answer any
shop (the tracker and lock stores are shared), so a shop moved by a change of the list only
loads its model once more where it now lands.

Growing past one machine: the runtimes are just URLs; put them on as many hosts as needed
(each with the shop models' volume mounted read-only, or a shared file system), list them all
in RASA_URL for the gateways and admin services, and share PostgreSQL and Redis as today.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

POINTS = 128  # per runtime: with 2-10 runtimes each gets within about 10 % of its share


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


class Runtimes:
    def __init__(self, urls: Sequence[str], points: int = POINTS) -> None:
        self.urls = tuple(dict.fromkeys(url.strip().rstrip("/") for url in urls if url.strip()))
        if not self.urls:
            raise ValueError("at least one runtime URL is needed")
        ring = sorted((_hash(f"{url}#{i}"), url) for url in self.urls for i in range(points))
        self._points = [point for point, _ in ring]
        self._owners = [url for _, url in ring]

    @classmethod
    def parse(cls, value: str) -> Runtimes:
        """RASA_URL: one URL, or several separated by commas."""
        return cls(value.split(","))

    def for_shop(self, shop: str) -> str:
        if len(self.urls) == 1:
            return self.urls[0]
        index = bisect.bisect_left(self._points, _hash(shop)) % len(self._points)
        return self._owners[index]

    def for_sender(self, sender_id: str) -> str:
        """The runtime of the shop a sender id names ("{shop}:{channel}:{user}")."""
        return self.for_shop(sender_id.split(":", 1)[0])
