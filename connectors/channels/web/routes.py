"""Web channel: the embeddable chat widget, its config, a demo page and its socket.

    GET  /channels/{tenant}/web/widget.js          the widget (one script tag on the shop's site)
    GET  /channels/{tenant}/web/config?key=…       {name, greeting, theme}
    GET  /channels/{tenant}/web/demo               a page that embeds the widget
    WS   /channels/{tenant}/web/socket?key=…       the conversation (socket.py)
"""

from __future__ import annotations

import hashlib
import html
from functools import cache
from pathlib import Path

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw
from sanic.response import html as html_response
from sanic.response import json as json_response
from sanic.server.websockets.impl import WebsocketImplProtocol

from connectors.channels.contract import Channel, context_of
from connectors.channels.web.look import key_matches, theme_of
from connectors.channels.web.socket import serve_socket
from connectors.errors import ChannelNotConfigured, Forbidden

WIDGET_JS = Path(__file__).resolve().parent / "static" / "widget.js"


@cache
def widget() -> tuple[bytes, str]:
    """The widget's script and its ETag (read once per process)."""
    body = WIDGET_JS.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


DEMO_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} - chat widget demo</title>
<style>
  /* Deliberately loud host styles: none of them reach inside the widget. */
  body {{ font-family: Georgia, serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem;
          color: #333; }}
  /* The script tag is one long line: wrapped, it cannot widen the page on a phone. */
  pre {{ white-space: pre-wrap; overflow-wrap: anywhere; }}
  button {{ background: hotpink !important; }}
  div {{ border-radius: 0; }}
</style>
</head>
<body>
<h1>{name}</h1>
<p>This page embeds the chat widget with one script tag, exactly as a shop would:</p>
<pre><code>{tag_text}</code></pre>
<p>Open the bubble in the corner and ask where order #1001 is (email alex@example.com).</p>
{tag}
</body>
</html>
"""



def routes(channel: Channel) -> Blueprint:
    bp = Blueprint(channel.name)

    @bp.get("/widget.js")
    async def widget_js(request: Request, tenant_slug: str) -> HTTPResponse:
        await context_of(request).tenant(tenant_slug)  # 404 for a shop we do not serve
        body, etag = widget()
        headers = {
            # Short freshness so a new widget reaches shops soon; the ETag makes rechecks cheap.
            "Cache-Control": "public, max-age=300",
            "ETag": etag,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == etag:
            return HTTPResponse(status=304, headers=headers)
        return raw(body, content_type="application/javascript; charset=utf-8", headers=headers)

    @bp.get("/config")
    async def widget_config(request: Request, tenant_slug: str) -> HTTPResponse:
        tenant = await context_of(request).tenant(tenant_slug)
        if not key_matches(tenant, request.args.get("key")):
            raise Forbidden("This widget key does not belong to this shop.")
        return json_response(
            {"name": tenant.name, "greeting": tenant.greeting, "theme": theme_of(tenant)},
            # Read from the shop's own pages (another origin); the key is public anyway.
            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=60"},
        )

    @bp.get("/demo")
    async def demo_page(request: Request, tenant_slug: str) -> HTTPResponse:
        ctx = context_of(request)
        tenant = await ctx.tenant(tenant_slug)
        if not tenant.widget_key:
            raise ChannelNotConfigured("This shop has no web widget key yet.")
        src = f"{ctx.public_origin(request)}/channels/{tenant.slug}/web/widget.js"
        tag = (f'<script src="{html.escape(src, quote=True)}" '
               f'data-key="{html.escape(tenant.widget_key, quote=True)}" async></script>')
        return html_response(DEMO_PAGE.format(name=html.escape(tenant.name), tag=tag,
                                              tag_text=html.escape(tag)))

    @bp.websocket("/socket")
    async def socket(request: Request, ws: WebsocketImplProtocol, tenant_slug: str) -> None:
        await serve_socket(channel, request, ws, tenant_slug)

    return bp
