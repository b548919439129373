"""API keys over the admin API: created with the secret shown once, listed without it, revoked."""

from __future__ import annotations

import pytest

from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio


async def test_an_owner_creates_lists_and_revokes_a_key(admin: Admin) -> None:
    status, created = await admin.call("POST", "/keys", json={"name": "ci", "role": "designer"})
    assert status == 201 and created["secret"].startswith("sb_live_")
    new = {"Authorization": f"Bearer {created['secret']}"}

    status, page = await admin.call("GET", "/keys")
    assert status == 200 and page["total"] >= 4
    assert all("secret" not in key for key in page["items"])
    assert page["items"][0]["id"] == created["id"]  # newest first

    status, revoked = await admin.call("DELETE", f"/keys/{created['id']}")
    assert status == 200 and revoked["revoked_at"]
    _, response = await admin.client.get("/api/v1/keys", headers=new)
    assert response.status == 401


async def test_another_shops_key_is_not_found(admin: Admin) -> None:
    _, page = await admin.call("GET", "/keys", shop=admin.other)
    theirs = page["items"][0]["id"]
    status, body = await admin.call("DELETE", f"/keys/{theirs}")
    assert status == 404 and body["detail"]


async def test_only_owners_manage_keys(admin: Admin) -> None:
    for role in ("designer", "agent"):
        status, body = await admin.call("GET", "/keys", role=role)
        assert status == 403 and body["detail"]
