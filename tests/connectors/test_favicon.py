"""The gateway's origin (the widget demo page) answers GET /favicon.ico with an icon, not a
404 in the browser's console."""

from __future__ import annotations

from pathlib import Path

from tests.connectors.test_health import make_app
from tests.databases import migrated_sqlite
from tests.favicon_check import read_icon
from tests.servers import free_port


def test_the_gateway_serves_an_icon(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, migrated_sqlite(tmp_path / "gw.db"),
                      f"http://127.0.0.1:{free_port()}")
    _, response = app.test_client.get("/favicon.ico")
    assert response.status == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert "max-age" in response.headers["cache-control"]  # not asked again on every page
    width, height, rows = read_icon(response.body)
    assert (width, height) == (32, 32)
    assert len(rows) == 32 * (1 + 32 * 4)  # every row of RGBA pixels is there
