"""Channel credentials over the admin API: set with the channel registry's own check, stored
sealed where the gateway reads them, merged field by field, and never returned: no GET and no
audit entry holds a secret value."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from admin_api.routes.channels import BACKEND_LABELS, CHOICE_LABEL, LABELS, PUBLIC
from admin_api.tables import AuditRow
from connectors.channels import BY_NAME
from core.settings import ROOT
from tenants.crypto import CredentialsBox
from tenants.models import TenantRow
from tests.admin_api.conftest import KEY, Admin

pytestmark = pytest.mark.asyncio

SECRETS = ("tw-auth-9f8e7d6c5b4a", "meta-app-secret-0a1b2c", "meta-verify-3d4e5f",
           "meta-access-6a7b8c", "smtp-password-9d0e1f", "mailgun-signing-2a3b4c",
           "shpat_access_5d6e7f", "ck_woo_8a9b0c", "cs_woo_1d2e3f")
TWILIO = {"account_sid": "AC0123456789", "auth_token": SECRETS[0],
          "sms_numbers": ["+15550001111"]}
META = {"app_secret": SECRETS[1], "verify_token": SECRETS[2], "access_token": SECRETS[3],
        "phone_number_id": "1098765"}
EMAIL: dict[str, Any] = {"address": "support@demo.example", "from_name": "Demo Outfitters",
         "inbound": "mailgun",
         "mailgun_signing_key": SECRETS[5],
         "smtp": {"host": "smtp.demo.example", "port": 587, "username": "bot",
                  "password": SECRETS[4], "starttls": True}}


async def stored(admin: Admin, shop_id: str | None = None) -> dict[str, Any]:
    async with admin.sessions() as session:
        row = (await session.execute(select(TenantRow).where(
            TenantRow.id == (shop_id or admin.demo.id)))).scalar_one()
    return CredentialsBox(KEY).open(row.credentials_encrypted)


async def everything_readable(admin: Admin) -> str:
    """Every GET of the API an owner may call, and the audit log's rows, as one text."""
    texts = []
    _, response = await admin.client.get("/openapi.json")
    document = response.json
    for path, operations in document["paths"].items():
        if "get" not in operations or "{" in path:
            continue
        _, body = await admin.call("GET", path.removeprefix("/api/v1"))
        texts.append(json.dumps(body))
    for name in [*BY_NAME, "order_backend"]:
        texts.append(json.dumps((await admin.call("GET", f"/channels/{name}"))[1]))
    async with admin.sessions() as session:
        for row in (await session.execute(select(AuditRow))).scalars():
            texts.append(json.dumps([row.target, row.before, row.after]))
    return "\n".join(texts)


async def test_an_owner_sets_every_channel_and_no_secret_comes_back(admin: Admin) -> None:
    for name, credentials in (("twilio", TWILIO), ("meta", META), ("email", EMAIL)):
        status, out = await admin.call("PUT", f"/channels/{name}",
                                       json={"credentials": credentials})
        assert status == 200, out
        assert out["configured"] is True and out["problems"] == []
    status, backend = await admin.call("PUT", "/channels/order_backend", json={
        "backend": "woocommerce", "credentials": {"store_url": "https://shop.example",
                                                  "consumer_key": SECRETS[7],
                                                  "consumer_secret": SECRETS[8]}})
    assert status == 200 and backend["fields"] == {"backend": "woocommerce",
                                                    "store_url": "https://shop.example"}
    assert backend["secret_fields"] == ["consumer_key", "consumer_secret"]

    # Stored sealed, in the sections the gateway and the actions read.
    sealed = await stored(admin)
    assert sealed["twilio"] == TWILIO and sealed["meta_whatsapp"] == META
    assert sealed["email"]["smtp"]["password"] == SECRETS[4]
    assert sealed["woocommerce"]["consumer_secret"] == SECRETS[8]
    assert all(not BY_NAME[name].problems(sealed) for name in ("twilio", "meta", "email"))

    _, page = await admin.call("GET", "/channels")
    by_name = {item["name"]: item for item in page["items"]}
    assert set(by_name) == {*BY_NAME, "order_backend"} and page["total"] == len(by_name)
    assert by_name["twilio"]["fields"] == {"account_sid": "AC0123456789",
                                           "sms_numbers": ["+15550001111"]}
    assert by_name["twilio"]["secret_fields"] == ["auth_token"]
    assert by_name["meta"]["fields"] == {"phone_number_id": "1098765"}
    assert by_name["email"]["fields"]["smtp"] == {"host": "smtp.demo.example", "port": 587,
                                                  "username": "bot", "starttls": True}
    assert "smtp.password" in by_name["email"]["secret_fields"]
    assert by_name["email"]["fields"]["from_name"] == "Demo Outfitters"  # a name, no secret
    assert by_name["rest"]["needs_credentials"] is False

    readable = await everything_readable(admin)
    leaked = [secret for secret in SECRETS if secret in readable]
    assert leaked == []
    async with admin.sessions() as session:
        entry = (await session.execute(select(AuditRow).where(
            AuditRow.action == "channel.credentials", AuditRow.target == "email"))).scalar_one()
    assert "smtp.password" in (entry.after or {})["fields"]


async def test_the_widget_card_gives_the_script_tag_to_paste(admin: Admin) -> None:
    """Its origin is the gateway's public one (PUBLIC_BASE_URL); without it the loopback
    gateway of `make run`; a gateway known only inside the deployment is no address for a
    shop's pages: a placeholder the owner replaces."""
    async with admin.sessions() as session:
        shop = await session.get(TenantRow, admin.demo.id)
        assert shop is not None
        slug, key = shop.slug, shop.widget_key
    def tag(origin: str) -> str:
        return (f'<script src="{origin}/channels/{slug}/web/widget.js" data-key="{key}" '
                'async></script>')

    for settings, origin in (
            (admin.settings, "http://127.0.0.1:8000"),
            (replace(admin.settings, public_base_url="https://chat.shop.example/"),
             "https://chat.shop.example"),
            (replace(admin.settings, gateway_url="http://gateway:8000"), "https://YOUR-GATEWAY")):
        admin.app.ctx.settings = settings
        status, web = await admin.call("GET", "/channels/web")
        assert status == 200 and web["embed"] == tag(origin), origin
    _, page = await admin.call("GET", "/channels")
    assert [c["name"] for c in page["items"] if c["embed"]] == ["web"]


async def test_credentials_merge_field_by_field(admin: Admin) -> None:
    await admin.call("PUT", "/channels/email", json={"credentials": EMAIL})
    status, out = await admin.call("PUT", "/channels/email", json={"credentials": {
        "smtp": {"host": "mail.other.example"}, "address": "help@demo.example"}})
    assert status == 200 and out["configured"]
    sealed = (await stored(admin))["email"]
    assert sealed["smtp"] == {**EMAIL["smtp"], "host": "mail.other.example"}  # password kept
    assert sealed["address"] == "help@demo.example"
    # null removes a field; removing a required one is refused with the channel's words.
    status, answer = await admin.call("PUT", "/channels/email",
                                      json={"credentials": {"address": None}})
    assert status == 422 and answer["detail"] == [{  # named as the Channels tab shows it
        "loc": ["credentials", "address"], "field": "email.address",
        "label": "Support address", "msg": "Support address is missing"}]
    assert (await stored(admin))["email"]["address"] == "help@demo.example"


async def test_the_registrys_check_refuses_what_the_gateway_would(admin: Admin) -> None:
    status, answer = await admin.call("PUT", "/channels/twilio", json={"credentials": {
        "account_sid": "AC1", "auth_token": SECRETS[0], "sms_numbers": "+15550001111"}})
    assert status == 422
    assert [(e["loc"], e["msg"]) for e in answer["detail"]] == [(
        ["credentials", "sms_numbers"], "SMS numbers must be a list of phone numbers, each "
        "with its country code (+1 555 000 1111)")]
    assert SECRETS[0] not in json.dumps(answer)
    status, answer = await admin.call("PUT", "/channels/email", json={"credentials": {
        "address": "a@b.example", "inbound": "postmark", "smtp": {"host": "h"}}})
    assert status == 422 and {"loc": ["credentials", "inbound"], "field": "email.inbound",
                              "label": "Inbound mail service",
                              "msg": "Inbound mail service is 'mailgun' or 'sendgrid'"} \
        in answer["detail"]
    status, answer = await admin.call("PUT", "/channels/order_backend", json={
        "backend": "shopify", "credentials": {"shop_url": "x.myshopify.com"}})
    assert status == 422 and [e["loc"][-1] for e in answer["detail"]] == ["access_token"]
    status, answer = await admin.call("PUT", "/channels/order_backend", json={
        "backend": "demo", "credentials": {"shop_url": "x"}})
    assert status == 422
    status, answer = await admin.call("PUT", "/channels/email", json={"credentials": {
        "address": "a@b.example", "inbound": ["mailgun"], "smtp": {"host": "h"}}})
    assert status == 422 and answer["detail"] == [{  # about no one field
        "loc": [], "field": None, "label": None,
        "msg": "Email has a field of the wrong type (see README, Channels)"}]
    assert await stored(admin) == {}
    status, _ = await admin.call("PUT", "/channels/rest", json={"credentials": {"a": "b"}})
    assert status == 422
    status, answer = await admin.call("PUT", "/channels/telegram",
                                      json={"credentials": {"token": "t"}})
    assert status == 404 and "telegram" in answer["detail"]


async def test_removing_a_channel_and_switching_backends(admin: Admin) -> None:
    await admin.call("PUT", "/channels/twilio", json={"credentials": TWILIO})
    status, out = await admin.call("DELETE", "/channels/twilio")
    assert status == 200 and out["configured"] is False and out["fields"] == {}
    assert "twilio" not in await stored(admin)
    await admin.call("PUT", "/channels/order_backend", json={
        "backend": "shopify", "credentials": {"shop_url": "x.myshopify.com",
                                              "access_token": SECRETS[6]}})
    status, shown = await admin.call("GET", "/channels/order_backend")
    assert status == 200 and shown["name"] == "order_backend", shown
    assert shown["fields"]["backend"] == "shopify" and SECRETS[6] not in str(shown)
    status, out = await admin.call("PUT", "/channels/order_backend", json={"backend": "demo"})
    assert status == 200 and out["fields"] == {"backend": "demo"}
    assert (await admin.call("GET", "/channels/order_backend"))[1] == out
    _, settings = await admin.call("GET", "/settings")
    assert settings["order_backend"] == "demo"
    assert (await stored(admin))["shopify"]["access_token"] == SECRETS[6]  # kept for later


async def test_only_owners_and_never_another_shops_credentials(admin: Admin) -> None:
    for role in ("designer", "agent"):
        for method, path, body in (("GET", "/channels", None),
                                   ("GET", "/channels/twilio", None),
                                   ("PUT", "/channels/twilio", {"credentials": TWILIO}),
                                   ("DELETE", "/channels/twilio", None)):
            extra: dict[str, Any] = {"json": body} if body else {}
            status, _ = await admin.call(method, path, role=role, **extra)
            assert status == 403, (role, method, path)
    status, _ = await admin.call("PUT", "/channels/twilio", shop=admin.other,
                                 json={"credentials": TWILIO})
    assert status == 200
    assert await stored(admin) == {}
    _, ours = await admin.call("GET", "/channels/twilio")
    assert ours["configured"] is False and ours["fields"] == {}
    assert (await stored(admin, admin.other.id))["twilio"] == TWILIO


async def test_an_owner_sets_where_agents_replies_to_rest_visitors_go(admin: Admin) -> None:
    """REST needs no credentials, but a shop may push agents' later replies to its server:
    the callback URL is shown, the signing secret never; removing it goes back to polling."""
    secret = "whsec-" + SECRETS[0]
    status, answer = await admin.call("PUT", "/channels/rest", json={"credentials": {
        "callback_url": "https://shop.example/switchboard", "signing_secret": "short"}})
    assert status == 422
    assert [e["msg"] for e in answer["detail"]] == [
        "Callback signing secret must have at least 16 characters"]
    status, answer = await admin.call("PUT", "/channels/rest", json={"credentials": {
        "callback_url": "https://shop.example/switchboard", "signing_secret": secret}})
    assert status == 200, answer
    assert answer["fields"] == {"callback_url": "https://shop.example/switchboard"}
    assert answer["secret_fields"] == ["signing_secret"] and answer["configured"] is True
    _, listed = await admin.call("GET", "/channels")
    assert secret not in json.dumps(listed)
    assert (await stored(admin))["rest"]["signing_secret"] == secret
    status, answer = await admin.call("DELETE", "/channels/rest")
    assert status == 200 and answer["fields"] == {} and "rest" not in await stored(admin)


def test_422s_name_fields_as_the_channels_tab_labels_them() -> None:
    """The labels the API's 422s use are the page's own (admin_api/pages/channels.js)."""
    page = (ROOT / "admin_api" / "pages" / "channels.js").read_text(encoding="utf-8")
    on_page = re.findall(r'\{ path: "([^"]+)", label: "([^"]+)"', page)
    ours = [(path, label) for fields in LABELS.values() for path, label in fields.items()]
    assert sorted(ours) == sorted(
        (path, label.removesuffix(" (optional)")) for path, label in on_page)



def test_every_field_shown_back_has_a_label() -> None:
    """A card's facts are its public fields by label: the email's sender name once read as
    the raw key `from_name`."""
    for section, public in PUBLIC.items():
        labelled = LABELS[section]
        for path in public:
            assert path in labelled or any(p.startswith(f"{path}.") for p in labelled), (
                section, path)
    assert LABELS["email"]["from_name"] == "Sender name"


async def store(admin: Admin, credentials: dict[str, Any], order_backend: str = "demo") -> None:
    """Credentials as `python -m tenants add` or an older release may have left them: stored
    without the admin API's check."""
    async with admin.sessions() as session:
        row = await session.get(TenantRow, admin.demo.id)
        assert row is not None
        row.credentials_encrypted = CredentialsBox(KEY).seal(credentials)
        row.order_backend = order_backend
        await session.commit()


async def test_the_channels_tab_shows_what_stored_credentials_lack_by_label(
        admin: Admin) -> None:
    """GET's problems are what the Channels tab's cards show: each field named by its label
    there, with the field's name beside it for scripts (problem_details)."""
    await store(admin, {
        "twilio": {"account_sid": "AC0123456789", "sms_numbers": ["+15550001111"]},
        "email": {"address": "a@b.example", "inbound": "mailgun", "smtp": {"port": 587}},
        "shopify": {"shop_url": "x.myshopify.com"}}, order_backend="shopify")
    _, page = await admin.call("GET", "/channels")
    by_name = {item["name"]: item for item in page["items"]}
    assert by_name["twilio"]["configured"] is False
    assert by_name["twilio"]["problems"] == ["Auth token is missing"]
    assert by_name["twilio"]["problem_details"] == [{
        "field": "twilio.auth_token", "label": "Auth token", "msg": "Auth token is missing"}]
    assert by_name["email"]["problems"] == [
        "Email via mailgun needs its signing key (Mailgun signing key)",
        "SMTP server needs a host"]
    assert [p["field"] for p in by_name["email"]["problem_details"]] == [
        "email.mailgun_signing_key", "email.smtp.host"]
    assert by_name["order_backend"]["problems"] == ["Admin API access token is missing"]
    assert by_name["order_backend"]["problem_details"] == [{
        "field": "shopify.access_token", "label": "Admin API access token",
        "msg": "Admin API access token is missing"}]
    status, one = await admin.call("GET", "/channels/twilio")
    assert status == 200 and one["problems"] == ["Auth token is missing"]
    assert not any("." in p for item in page["items"] for p in item["problems"]), page


async def test_an_order_backend_body_missing_a_field_is_told_by_label(admin: Admin) -> None:
    """The body is checked before the route runs; its 422 still names each field as the
    Channels tab labels it, as the route's own checks do (pydantic's `type` kept)."""
    async def refused(body: Any) -> list[dict[str, Any]]:
        status, answer = await admin.call("PUT", "/channels/order_backend", json=body)
        assert status == 422, answer
        return list(answer["detail"])

    assert await refused({"backend": "shopify", "credentials": {
        "shop_url": "x.myshopify.com"}}) == [{
            "loc": ["shopify", "credentials", "access_token"], "field": "shopify.access_token",
            "label": "Admin API access token", "msg": "Admin API access token is missing",
            "type": "missing"}]
    said = await refused({"backend": "shopify", "credentials": {
        "shop_url": "x.myshopify.com", "access_token": "  ", "api_version": "v1"}})
    assert [(e["field"], e["msg"]) for e in said] == [
        ("shopify.access_token", "Admin API access token is missing"),
        ("shopify.api_version", "API version is a year and month, as 2024-10")]
    said = await refused({"backend": "woocommerce", "credentials": {
        "store_url": 5, "consumer_key": "k" * 501, "consumer_secret": SECRETS[8]}})
    assert [(e["loc"], e["label"], e["msg"]) for e in said] == [
        (["woocommerce", "credentials", "store_url"], "Store address",
         "Store address must be a string"),
        (["woocommerce", "credentials", "consumer_key"], "Consumer key",
         "Consumer key is too long (at most 500 characters)")]
    assert SECRETS[8] not in json.dumps(said) and "k" * 501 not in json.dumps(said)
    # The shop platform itself: the form's choice.
    assert await refused({"backend": "magento"}) == [{
        "loc": ["backend"], "field": "backend", "label": "Shop platform",
        "msg": "Shop platform is one of demo, shopify, woocommerce",
        "type": "union_tag_invalid"}]
    assert [e["msg"] for e in await refused({})] == ["Shop platform is missing"]
    # About the body as a whole, no one field: loc names where, field and label are null.
    for body, loc, msg in (
            ({"backend": "shopify"}, ["shopify", "credentials"],
             "Shopify needs its credentials: Shop address, Admin API access token"),
            ({"backend": "woocommerce", "credentials": ["x"]}, ["woocommerce", "credentials"],
             "WooCommerce's credentials must be an object of its fields (see README, "
             "Channels)"),
            ({"backend": "demo", "credentials": {}}, ["demo", "credentials"],
             "Demo orders take no credentials"),
            ({"backend": "shopify", "credentials": {"shop_url": "x.myshopify.com",
                                                    "access_token": SECRETS[6],
                                                    "password": "p"}},
             ["shopify", "credentials", "password"],
             "Shopify has no field 'password' (its fields: Shop address, Admin API access "
             "token, API version)"),
            ({"backend": "demo", "note": "x"}, ["demo", "note"],
             "There is no 'note' in the body: send the backend and its credentials"),
            (["shopify"], [], "Send an object with the backend and its credentials (see "
                              "README, Channels)")):
        said = await refused(body)
        assert [(e["loc"], e["field"], e["label"], e["msg"]) for e in said] == [
            (loc, None, None, msg)], body
    assert await stored(admin) == {}
    # Other bodies' 422s keep pydantic's own form.
    status, answer = await admin.call("PUT", "/channels/twilio", json={"credentials": "x"})
    assert status == 422 and answer["detail"] == [{
        "loc": ["credentials"], "msg": "Input should be a valid dictionary",
        "type": "dict_type"}]


async def test_a_nul_in_the_order_backend_body_is_told_by_label(admin: Admin) -> None:
    """NUL (or an unpaired surrogate) is refused before the body is read as a backend (api.py);
    the 422 still names the field as the Channels tab labels it, as its other field errors do
    (it was pydantic's bare {loc: ["credentials", "access_token"], msg: "text may not hold
    ..."}, which names the API's field)."""
    status, answer = await admin.call("PUT", "/channels/order_backend", json={
        "backend": "shopify", "credentials": {"shop_url": "x.myshopify.com",
                                              "access_token": "shpat_\u0000x"}})
    assert status == 422, answer
    assert answer["detail"] == [{
        "loc": ["shopify", "credentials", "access_token"], "field": "shopify.access_token",
        "label": "Admin API access token",
        "msg": "Admin API access token holds a character that cannot be stored (NUL, U+0000, "
               "or an unpaired surrogate): type or paste it again",
        "type": "string_unstorable"}]
    status, answer = await admin.call("PUT", "/channels/order_backend", json={
        "backend": "woo\u0000", "credentials": {
            "store_url": "https://x.example", "consumer_key": "k", "consumer_secret": "s\u0000"}})
    assert status == 422
    assert [(e["field"], e["label"], e["msg"].split(" holds ")[0]) for e in answer["detail"]] == [
        ("backend", "Shop platform", "Shop platform"),
        ("woocommerce.consumer_secret", "Consumer secret", "Consumer secret")]
    status, answer = await admin.call("PUT", "/channels/order_backend", json={
        "backend": "demo", "note\u0000": "x"})
    assert status == 422 and answer["detail"][0]["field"] is None
    assert answer["detail"][0]["msg"].startswith("The body's note\\u0000 holds a character")
    assert await stored(admin) == {}


def test_the_order_backends_words_are_the_channels_tabs() -> None:
    """The shop platform's label and each backend's name in the 422s are the page's own."""
    page = (ROOT / "admin_api" / "pages" / "channels.js").read_text(encoding="utf-8")
    assert f'name: "backend", label: "{CHOICE_LABEL}"' in page
    for backend, label in BACKEND_LABELS.items():
        assert f'{backend}: {{ label: "{label}"' in page, backend
