"""Hosts a shop's owner makes our servers connect to (the REST reply callback, the SMTP server,
the WooCommerce or Shopify URL, a webhook) must be public in production: saving a private one
is a 422 naming the field, and nothing is stored; with ALLOW_PRIVATE_DESTINATIONS (development,
tests) the same values are accepted. core/destinations.py is the policy. About 1 s.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.admin_api.conftest import Admin

pytestmark = pytest.mark.asyncio

SECRET = "callback-secret-0123456789"
# The same shop's settings, each naming an internal address in another written form.
PRIVATE: list[tuple[str, dict[str, Any], str]] = [
    ("/channels/rest", {"credentials": {"callback_url": "http://2130706433:8080/api/v1/keys",
                                        "signing_secret": SECRET}}, "rest.callback_url"),
    ("/channels/email", {"credentials": {
        "address": "help@demo.example", "inbound": "mailgun", "mailgun_signing_key": "key-1",
        "smtp": {"host": "10.0.0.25", "port": 25}}}, "email.smtp.host"),
    ("/channels/order_backend", {"backend": "woocommerce", "credentials": {
        "store_url": "http://169.254.169.254/latest/meta-data?x=", "consumer_key": "ck",
        "consumer_secret": "cs"}}, "woocommerce.store_url"),
    ("/channels/order_backend", {"backend": "shopify", "credentials": {
        "shop_url": "localhost:9999", "access_token": "shpat_x"}}, "shopify.shop_url"),
]


async def test_private_destinations_are_refused_when_saved_unless_allowed(admin: Admin) -> None:
    admin.app.ctx.settings = replace(admin.settings, allow_private_destinations=False)
    for path, body, field in PRIVATE:
        status, answer = await admin.call("PUT", path, json=body)
        assert status == 422, (field, answer)
        [said] = answer["detail"]  # the field as the Channels tab labels it
        assert said["field"] == field and said["loc"][-1] == field.split(".")[-1], said
        assert said["msg"] == (f"{said['label']} points to a private network address (this "
                               "server, a local network or cloud metadata); give the "
                               "public address of your server")
    status, answer = await admin.call("POST", "/webhooks", json={
        "url": "https://[::ffff:127.0.0.1]/hooks", "events": ["handoff.requested"]})
    assert status == 422 and "private network address" in answer["detail"]
    _, listed = await admin.call("GET", "/channels")
    by_name = {c["name"]: c for c in listed["items"]}
    assert not by_name["rest"]["fields"] and not by_name["email"]["fields"]
    assert by_name["order_backend"]["fields"] == {"backend": "demo"}  # nothing was stored

    # Public hosts pass as before.
    status, answer = await admin.call("PUT", "/channels/rest", json={"credentials": {
        "callback_url": "https://shop.example/replies", "signing_secret": SECRET}})
    assert status == 200, answer

    admin.app.ctx.settings = replace(admin.settings, allow_private_destinations=True)
    for path, body, field in PRIVATE:
        status, answer = await admin.call("PUT", path, json=body)
        assert status == 200, (field, answer)
    _, listed = await admin.call("GET", "/channels")
    by_name = {c["name"]: c for c in listed["items"]}
    assert by_name["rest"]["fields"]["callback_url"] == "http://2130706433:8080/api/v1/keys"
    assert by_name["order_backend"]["fields"]["shop_url"] == "localhost:9999"
