"""`make run`'s bootstrap gives the admin API's demo access in var/dev.env: an API key of the
demo shop per role and the demo owner's password, kept across runs and repaired when broken."""

from __future__ import annotations

import pytest

from admin_api import people
from core.settings import async_database_url
from devtools.bootstrap import DEMO_OWNER_EMAIL, demo_people, env_value
from devtools.demo_shop import DEMO_TENANT_ID
from tenants.api_keys import revoke_key
from tests.admin_api.accounts import Browser
from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio
NAMES = ("DEMO_OWNER_KEY", "DEMO_DESIGNER_KEY", "DEMO_AGENT_KEY", "DEMO_AGENT2_KEY",
         "DEMO_OWNER_PASSWORD")


async def test_the_demo_keys_and_owner_password_work_and_are_kept(admin: Admin) -> None:
    dev_env = admin.settings.var_dir / "dev.env"
    dev_env.parent.mkdir(parents=True, exist_ok=True)
    dev_env.write_text("# secrets\nRASA_TOKEN=abc\n")
    url = async_database_url(admin.database_url)
    await demo_people(url, dev_env)
    values = {name: env_value(dev_env, name) for name in NAMES}
    assert all(values.values()) and env_value(dev_env, "RASA_TOKEN") == "abc"
    assert dev_env.stat().st_mode & 0o077 == 0

    for role in ("owner", "designer", "agent"):
        key = values[f"DEMO_{role.upper()}_KEY"]
        _, response = await admin.client.get("/api/v1/session",
                                             headers={"Authorization": f"Bearer {key}"})
        assert response.status == 200 and response.json["role"] == role
        assert response.json["shop"]["id"] == DEMO_TENANT_ID
    agent2 = values["DEMO_AGENT2_KEY"]
    assert agent2 != values["DEMO_AGENT_KEY"]
    _, response = await admin.client.get("/api/v1/session",
                                         headers={"Authorization": f"Bearer {agent2}"})
    assert response.status == 200 and response.json["role"] == "agent"
    body = await Browser(admin).log_in(DEMO_OWNER_EMAIL, str(values["DEMO_OWNER_PASSWORD"]))
    assert body["role"] == "owner" and body["shop"]["slug"] == "demo"

    await demo_people(url, dev_env)  # the next `make run` changes nothing
    assert {name: env_value(dev_env, name) for name in NAMES} == values

    # A revoked key is replaced; a password changed in the database is set back.
    designer = str(values["DEMO_DESIGNER_KEY"])
    await revoke_key(admin.sessions, DEMO_TENANT_ID, designer[:20])
    await people.set_password(admin.sessions, DEMO_OWNER_EMAIL, "someone changed it")
    await demo_people(url, dev_env)
    fresh = env_value(dev_env, "DEMO_DESIGNER_KEY")
    assert fresh and fresh != designer
    assert dev_env.read_text().count("DEMO_DESIGNER_KEY=") == 1
    assert env_value(dev_env, "DEMO_OWNER_KEY") == values["DEMO_OWNER_KEY"]
    await Browser(admin).log_in(DEMO_OWNER_EMAIL, str(values["DEMO_OWNER_PASSWORD"]))
