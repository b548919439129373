"""The owner page, the agents' inbox, the accept-invitation and password reset pages and the
API's reference (`/docs`), served by the admin process itself.

Plain files beside this module (HTML, CSS, ES modules), no build step and no CDN: what the
browser runs is what is in the repository (Swagger UI, for `/docs`, comes from the pinned
swagger-ui-bundle-v2 package), and the page talks only to this origin's
`/api/v1` (the session cookie is HttpOnly; the page sends the CSRF token it got at login as
`X-CSRF-Token` on unsafe calls).

Every page answer carries a strict Content-Security-Policy (scripts and styles only from this
origin, no inline script, no framing, fetches only to this origin), `X-Frame-Options: DENY`
against clickjacking, `Referrer-Policy: no-referrer` so a token in `/invite?token=` or
`/reset?token=` never leaks to another site, and `Cache-Control: no-store` on the HTML. The
files are read once when the app is built: only the names in `ASSETS` are served, so no request
path ever reaches the file system.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, raw, redirect
from swagger_ui_bundle import swagger_ui_path

from admin_api.errors import NotFound
from core import favicon

HERE = Path(__file__).resolve().parent
RouteHandler = Callable[[Request], Coroutine[Any, Any, HTTPResponse]]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
ASSETS = ("app.css", "api.js", "session.js", "app.js", "forms.js", "settings.js",
          "opening-hours.js", "timeline.js", "transcript.js", "channels.js",
          "developers.js", "audit.js", "privacy.js", "training.js", "training-editor.js",
          "training-models.js", "training-gaps.js", "invite.js", "reset.js", "inbox.css",
          "inbox.js", "inbox-transcript.js", "unsaved.js", "docs.js")  # under /app/
PAGES = {"/app/": "index.html", "/app/inbox": "inbox.html", "/invite": "invite.html",
         "/reset": "reset.html", "/docs": "docs.html"}
SWAGGER_UI = ("swagger-ui.css", "swagger-ui-bundle.js")  # under /docs/, from the package


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    cache: str  # HTML is never cached (it names the session's state); assets briefly


def load(name: str, folder: Path = HERE) -> Asset:
    path = folder / name
    cache = "no-store" if path.suffix == ".html" else "no-cache"
    return Asset(path.read_bytes(), TYPES[path.suffix], cache)


def answer(asset: Asset) -> HTTPResponse:
    return raw(asset.body, content_type=asset.content_type,
               headers={**SECURITY_HEADERS, "Cache-Control": asset.cache})


def mount(app: Sanic) -> None:
    """Add the pages to the admin app: `/` and `/app` lead to `/app/`, `/app/inbox` is the
    agents' inbox, `/invite` the invitation page, `/reset` the password reset page,
    `/app/<asset>` their scripts and styles."""
    pages = {uri: load(name) for uri, name in PAGES.items()}
    assets = {name: load(name) for name in ASSETS}
    swagger_ui = {name: load(name, Path(str(swagger_ui_path))) for name in SWAGGER_UI}

    async def home(request: Request) -> HTTPResponse:
        return redirect("/app/", headers=SECURITY_HEADERS)

    def page(served: Asset) -> RouteHandler:
        async def handler(request: Request) -> HTTPResponse:
            return answer(served)
        return handler

    async def asset(request: Request, name: str) -> HTTPResponse:
        if name not in assets:
            raise NotFound("no such file")
        return answer(assets[name])

    async def icon(request: Request) -> HTTPResponse:
        return raw(favicon.icon(), content_type=favicon.CONTENT_TYPE,
                   headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=86400"})

    app.add_route(home, "/", methods=["GET"], name="pages_home")
    app.add_route(icon, "/favicon.ico", methods=["GET"], name="pages_favicon")
    app.add_route(home, "/app", methods=["GET"], name="pages_app_redirect")
    for uri, served in pages.items():
        app.add_route(page(served), uri, methods=["GET"], strict_slashes=True,
                      name=f"pages_{PAGES[uri].removesuffix('.html')}")
    app.add_route(asset, "/app/<name:str>", methods=["GET"], name="pages_asset")
    for name, served in swagger_ui.items():
        app.add_route(page(served), f"/docs/{name}", methods=["GET"],
                      name=f"pages_swagger_{name.replace('.', '_').replace('-', '_')}")
