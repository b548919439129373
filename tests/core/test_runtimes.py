"""Shops spread over several bot runtimes by consistent hashing (core/runtimes.py), and the
gateway's turns and the admin service's tracker events following it to real HTTP servers."""

from __future__ import annotations

from collections import Counter

import pytest

from admin_api.rasa import RasaTracker
from connectors.rasa_client import RasaClient
from core.runtimes import Runtimes
from core.settings import BotSettings, ConfigError, Settings
from tests.fakes.rasa_server import RasaFake

SHOPS = [f"shop-{i}" for i in range(3000)]
KEY = BotSettings.from_env({"RASA_TOKEN": "runtimes-test-token"}).rasa_jwt_key


def test_a_shop_always_lands_on_the_same_runtime_and_shops_spread_evenly() -> None:
    ring = Runtimes.parse("http://bot-1:5005, http://bot-2:5005/,http://bot-3:5005")
    assert ring.urls == ("http://bot-1:5005", "http://bot-2:5005", "http://bot-3:5005")
    placed = {shop: ring.for_shop(shop) for shop in SHOPS}
    again = Runtimes(list(reversed(ring.urls)))  # the order RASA_URL lists them in is moot
    assert all(again.for_shop(shop) == url for shop, url in placed.items())
    shares = Counter(placed.values())
    assert all(abs(count - 1000) < 150 for count in shares.values()), shares
    assert ring.for_sender("shop-7:web:visitor-1") == placed["shop-7"]


def test_adding_a_runtime_moves_only_its_share_and_only_to_it() -> None:
    three = Runtimes(["http://bot-1:5005", "http://bot-2:5005", "http://bot-3:5005"])
    four = Runtimes([*three.urls, "http://bot-4:5005"])
    moved = [shop for shop in SHOPS if three.for_shop(shop) != four.for_shop(shop)]
    assert all(four.for_shop(shop) == "http://bot-4:5005" for shop in moved)
    assert 600 < len(moved) < 900  # about a quarter of 3000


def test_one_runtime_serves_everyone_and_bad_lists_are_refused() -> None:
    one = Runtimes.parse("http://127.0.0.1:5005")
    assert {one.for_shop(shop) for shop in SHOPS[:50]} == {"http://127.0.0.1:5005"}
    with pytest.raises(ValueError):
        Runtimes.parse(" , ")
    with pytest.raises(ConfigError):
        Settings.from_env({"SWITCHBOARD_CREDENTIALS_KEY": "k", "RASA_TOKEN": "t",
                           "RASA_URL": "http://bot-1:5005,ftp://bot-2"})


@pytest.mark.asyncio
async def test_turns_and_tracker_events_go_to_the_shops_runtime() -> None:
    with RasaFake() as first, RasaFake() as second:
        urls = f"{first.base_url},{second.base_url}"
        ring = Runtimes.parse(urls)
        client = RasaClient(urls, KEY, timeout=10, action_server_url="http://127.0.0.1:9")
        tracker = RasaTracker(urls, KEY)
        try:
            shops = [f"shop-{i}" for i in range(12)]
            for shop in shops:
                for visitor in ("a", "b"):
                    await client.turn(f"{shop}:rest:{visitor}", "hello",
                                      {"tenant_id": shop, "channel": "rest"})
                await tracker.append(f"{shop}:rest:a", [{"event": "resume"}])
        finally:
            await client.aclose()
            await tracker.aclose()
        fakes = {first.base_url: first, second.base_url: second}
        for shop in shops:
            mine = fakes[ring.for_shop(shop)]
            other = second if mine is first else first
            senders = [body["sender"] for body in mine.seen]
            assert senders.count(f"{shop}:rest:a") == senders.count(f"{shop}:rest:b") == 1
            assert not [b for b in other.seen if b["sender"].startswith(f"{shop}:")]
            assert [s for s, _, _ in mine.tracker_events].count(f"{shop}:rest:a") == 1
        assert first.seen and second.seen  # both runtimes had shops
