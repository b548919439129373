"""`python -m admin_api` on the server: run as a real subprocess against the test database,
then checked through the API (the contract: `keys create` prints the key as its last line)."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from sqlalchemy import select

from admin_api.tables import AuditRow
from core.settings import ROOT
from tests.admin_api.accounts import Browser
from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio


async def cli(admin: Admin, *args: str, stdin: str = "") -> tuple[int, list[str], str]:
    """(exit status, stdout lines, stderr) of `python -m admin_api ARGS` on the test database,
    without SMTP_URL (invitation links are printed)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SMTP_URL", "ADMIN_PUBLIC_URL")}
    env.update(DATABASE_URL=admin.database_url,
               SWITCHBOARD_VAR_DIR=str(admin.settings.var_dir))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "admin_api", *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    return process.returncode or 0, out.decode().splitlines(), err.decode()


async def test_keys_create_prints_the_key_last_and_it_opens_the_api(admin: Admin) -> None:
    status, lines, err = await cli(admin, "keys", "create", "--tenant", "demo", "--role",
                                   "designer", "--name", "ci")
    assert status == 0, err
    key = lines[-1]
    assert key.startswith("sb_live_") and " " not in key
    _, response = await admin.client.get("/api/v1/session",
                                         headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    assert response.json["role"] == "designer" and response.json["shop"]["slug"] == "demo"

    status, lines, _ = await cli(admin, "keys", "list", "--tenant", "demo")
    [listed] = [line for line in lines if key[:20] in line]
    assert "designer" in listed and "ci" in listed and key not in "\n".join(lines)

    status, lines, _ = await cli(admin, "keys", "revoke", "--tenant", "demo", key[:20])
    assert status == 0 and "revoked" in lines[-1]
    admin.app.ctx.keys.forget(key[8:20])  # the CLI is another process: skip the 5 s cache
    _, response = await admin.client.get("/api/v1/session",
                                         headers={"Authorization": f"Bearer {key}"})
    assert response.status == 401

    status, _, err = await cli(admin, "keys", "create", "--tenant", "nowhere", "--role", "owner")
    assert status != 0 and "nowhere" in err


async def test_a_shop_created_on_the_server_gets_its_owner_by_invitation(admin: Admin) -> None:
    status, lines, err = await cli(admin, "shops", "create", "--slug", "acme", "--name", "Acme",
                                   "--owner-email", "Boss@Acme.example")
    assert status == 0, err
    link = lines[-1]
    assert link.startswith("http://localhost:8080/invite?token=")
    browser = Browser(admin)
    status, joined, _ = await browser.call(
        "POST", "/invitations/accept",
        json={"token": link.rpartition("=")[2], "password": "the boss's password"})
    assert status == 200 and joined["shop"]["slug"] == "acme" and joined["role"] == "owner"

    status, lines, err = await cli(admin, "invite", "--tenant", "acme", "--email",
                                   "ann@acme.example", "--role", "agent")
    assert status == 0 and "/invite?token=" in lines[-1], err
    status, page, _ = await browser.call("GET", "/users")
    assert [(m["email"], m["status"]) for m in page["items"]] == [
        ("boss@acme.example", "active"), ("ann@acme.example", "invited")]
    async with admin.sessions() as session:
        actions = (await session.execute(select(AuditRow.action).where(
            AuditRow.actor == "cli"))).scalars().all()
    assert {"shop.create", "user.invite"} <= set(actions)

    status, _, err = await cli(admin, "shops", "create", "--slug", "acme", "--name", "Again")
    assert status != 0 and "exists" in err


async def test_passwords_and_operators_from_stdin(admin: Admin) -> None:
    status, lines, err = await cli(admin, "operators", "create", "--email", "ops@example.com",
                                   stdin="operator password\n")
    assert status == 0, err
    body = await Browser(admin).log_in("ops@example.com", "operator password")
    assert body["role"] == "operator"

    status, _, err = await cli(admin, "users", "set-password", "--email", "ops@example.com",
                               stdin="a brand new password\n")
    assert status == 0, err
    refused = await Browser(admin).call("POST", "/session", json={
        "email": "ops@example.com", "password": "operator password"})
    assert refused[0] == 401
    await Browser(admin).log_in("ops@example.com", "a brand new password")

    status, _, err = await cli(admin, "users", "set-password", "--email", "ops@example.com",
                               stdin="short\n")
    assert status != 0 and "10 characters" in err
    status, _, err = await cli(admin, "users", "set-password", "--email", "who@example.com",
                               stdin="long enough password\n")
    assert status != 0 and "no user" in err
