"""The admin origin (owner page, inbox, docs) answers GET /favicon.ico with an icon, not a
404 in the browser's console on every page."""

from __future__ import annotations

import pytest

from tests.admin_api.conftest import Admin
from tests.favicon_check import read_icon

pytestmark = pytest.mark.asyncio


async def test_the_admin_service_serves_an_icon(admin: Admin) -> None:
    _, response = await admin.client.get("/favicon.ico")
    assert response.status == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert "max-age" in response.headers["cache-control"]
    width, height, rows = read_icon(response.body)
    assert (width, height) == (32, 32)
    assert len(rows) == 32 * (1 + 32 * 4)
