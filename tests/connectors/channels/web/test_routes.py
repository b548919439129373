"""The web channel's HTTP routes: the widget script, the shop's widget config, the demo page.

Through the shared channel harness (the real routes under /channels/<shop>/web/, the gateway's
real error answers). The socket is in test_socket.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sanic_testing.testing import ASGI_BASE_URL  # type: ignore[import-untyped]  # no py.typed

from connectors.channels import web
from connectors.channels.web.look import DEFAULT_THEME, key_matches, theme_of
from connectors.channels.web.routes import WIDGET_JS
from tests.connectors.channels.harness import ChannelHarness, shop

SHOP = shop("shop", "t-shop-0001", name="Shop & Co", greeting="Hello from Shop!",
            widget_key="pk_shop", widget_theme={"primary": "#123456", "text": "#fff",
                                                "title": "Shop help", "position": "left"})
OTHER = shop("other", "t-other-0002", name="Other", widget_key="pk_other", widget_theme={})
NO_WIDGET = shop("nowidget", "t-none-0003", name="No widget")


def harness(public_base_url: str | None = None) -> ChannelHarness:
    # The web channel needs no credentials: the widget key is on the shop itself.
    return ChannelHarness(web.CHANNEL, "web", tenant=SHOP, others=[OTHER, NO_WIDGET],
                          public_base_url=public_base_url)


async def get(h: ChannelHarness, path: str, slug: str = "shop",
              headers: dict[str, str] | None = None, **params: Any) -> Any:
    _, response = await h.app.asgi_client.get(h.url(path, slug), params=params,
                                              headers=headers or {})
    return response


@pytest.mark.asyncio
async def test_widget_script_is_served_as_javascript_with_cache_headers() -> None:
    h = harness()
    response = await get(h, "widget.js")
    again = await get(h, "widget.js", headers={"If-None-Match": response.headers["etag"]})
    stale = await get(h, "widget.js", headers={"If-None-Match": '"an-older-widget"'})
    unknown = await get(h, "widget.js", slug="nope")
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert "max-age" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "attachShadow" in response.text and "document.currentScript" in response.text
    assert response.body == WIDGET_JS.read_bytes()
    assert again.status == 304 and again.body == b""
    assert stale.status == 200 and stale.body == response.body
    assert unknown.status == 404 and "nope" in unknown.json["detail"]


@pytest.mark.asyncio
async def test_config_gives_the_shops_look_for_its_key_only() -> None:
    h = harness()
    ok = await get(h, "config", key="pk_shop")
    other = await get(h, "config", key="pk_other")
    missing = await get(h, "config")
    defaults = await get(h, "config", slug="other", key="pk_other")
    no_widget = await get(h, "config", slug="nowidget", key="")
    unknown = await get(h, "config", slug="nope", key="pk_shop")
    assert ok.status == 200
    assert ok.headers["access-control-allow-origin"] == "*"
    assert ok.json == {"name": "Shop & Co", "greeting": "Hello from Shop!",
                       "theme": {"primary": "#123456", "text": "#fff", "title": "Shop help",
                                 "position": "left"}}
    assert other.status == 403 and "key" in other.json["detail"]
    assert missing.status == 403
    assert defaults.json["theme"] == {**DEFAULT_THEME, "title": "Other"}
    assert no_widget.status == 403
    assert unknown.status == 404


def test_theme_values_that_are_not_colours_are_not_passed_to_css() -> None:
    shady = replace(SHOP, widget_theme={"primary": "red;}body{display:none", "text": "#12",
                                        "position": "top", "title": 5})
    assert theme_of(shady) == {**DEFAULT_THEME, "title": "Shop & Co"}
    long_title = replace(SHOP, widget_theme={"title": "  " + "t" * 200 + "  "})
    assert theme_of(long_title)["title"] == "t" * 80


@pytest.mark.parametrize(("tenant", "key", "matches"), [
    (SHOP, "pk_shop", True), (SHOP, "PK_SHOP", False), (SHOP, "pk_other", False),
    (SHOP, None, False), (SHOP, "", False), (NO_WIDGET, "", False), (NO_WIDGET, None, False),
    (SHOP, "pk_shöp", False),
])
def test_a_widget_key_matches_only_its_own_shop(tenant: Any, key: str | None,
                                                 matches: bool) -> None:
    assert key_matches(tenant, key) is matches


@pytest.mark.asyncio
async def test_demo_page_embeds_the_widget_with_the_shops_key() -> None:
    h = harness()
    page = await get(h, "demo")
    none = await get(h, "demo", slug="nowidget")
    unknown = await get(h, "demo", slug="nope")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert (f'<script src="{ASGI_BASE_URL}/channels/shop/web/widget.js" data-key="pk_shop" async>'
            in page.text)
    assert "Shop &amp; Co" in page.text and "Shop & Co" not in page.text
    assert none.status == 404 and "widget" in none.json["detail"]
    assert unknown.status == 404


@pytest.mark.asyncio
async def test_demo_page_behind_a_proxy_points_at_the_public_origin() -> None:
    page = await get(harness(public_base_url="https://chat.example.com/"), "demo")
    assert ('<script src="https://chat.example.com/channels/shop/web/widget.js" '
            'data-key="pk_shop" async>' in page.text)
