"""Designers' drafts of the shop's training data over the admin API (issue 15, first slice):
Rasa YAML in and out byte for byte, content types, names, sizes, roles, one shop never seeing
another's drafts, the audit log, the plan's own models (402), and our checks: a good overlay
passes; a broken file, a redefined base rule or slot, an action that does not exist are
refused with file and line. Rasa's own checks are a stand-in here that finds nothing (the real
workshop: tests/admin_api/test_training_validate.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from admin_api.api import API
from admin_api.app import TITLE, VERSION, create_app
from admin_api.tables import AuditRow
from admin_api.training.drafts import MAX_DRAFT_BYTES, MAX_SHOP_BYTES, fingerprint
from core.settings import ROOT
from tests.admin_api.conftest import Admin, Shop, admin_settings
from tests.gift_form_drafts import GIFT_DOMAIN, GIFT_NLU, GIFT_RULES
from tests.sanic_client import RunningAppClient, stop_app

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("rasa_finds_nothing")]
YAML = {"Content-Type": "application/x-yaml"}

DOMAIN = """version: "3.1"
# Bikes: is the frame size right for me?
intents:
  - ask_size
responses:
  utter_size_guide:
    - text: "Our frames come in S, M and L: S up to 170 cm, M to 185 cm, L above."
"""
NLU = """version: "3.1"
nlu:
  - intent: ask_size
    examples: |
      - is the frame size right for me?
      - which frame size should I get
      - what size bike fits someone who is 180 cm
  - intent: check_order_status
    examples: |
      - where is my bike
"""
RULES = """version: "3.1"
rules:
  - rule: size questions get the size guide
    steps:
      - intent: ask_size
      - action: utter_size_guide
"""


async def put(admin: Admin, kind: str, name: str, text: str | bytes, role: str = "designer",
              shop: Shop | None = None, headers: dict[str, str] | None = None
              ) -> tuple[int, Any]:
    body = text.encode("utf-8") if isinstance(text, str) else text
    return await admin.call("PUT", f"/training/{kind}/{name}", role=role, shop=shop,
                            content=body, headers=YAML if headers is None else headers)


async def get_text(admin: Admin, path: str, role: str = "designer",
                   shop: Shop | None = None) -> tuple[int, str, str]:
    _, response = await admin.client.get(f"/api/v1{path}",
                                         headers=(shop or admin.demo).auth(role))
    return response.status, response.body.decode("utf-8"), response.headers.get("content-type")


async def validation(admin: Admin, shop: Shop | None = None) -> dict[str, Any]:
    status, body = await admin.call("POST", "/training/validate", role="designer", shop=shop)
    assert status == 200, body
    return dict(body)


async def test_a_draft_goes_in_and_comes_back_exactly(admin: Admin) -> None:
    text = NLU.replace("nlu:", "nlu:   # trailing spaces and comments are kept  ")
    status, saved = await put(admin, "nlu", "sizes", text)
    assert status == 201, saved
    assert (saved["kind"], saved["name"], saved["size"]) == ("nlu", "sizes", len(text))
    assert saved["updated_at"]
    status, back, content_type = await get_text(admin, "/training/nlu/sizes")
    assert (status, back) == (200, text)
    assert content_type.startswith("application/x-yaml")

    status, saved = await put(admin, "nlu", "sizes", NLU, role="owner")
    assert status == 200 and saved["size"] == len(NLU)
    assert (await get_text(admin, "/training/nlu/sizes"))[1] == NLU
    await put(admin, "domain", "sizes", DOMAIN)
    status, listing = await admin.call("GET", "/training", role="designer")
    assert status == 200 and listing["total"] == 2
    assert [(d["kind"], d["name"], d["size"]) for d in listing["items"]] == [
        ("domain", "sizes", len(DOMAIN)), ("nlu", "sizes", len(NLU))]
    assert listing["items"][1]["updated_by"].startswith("key:")
    _, only = await admin.call("GET", "/training", role="designer", params={"kind": "nlu"})
    assert [d["name"] for d in only["items"]] == ["sizes"]

    assert (await admin.call("DELETE", "/training/nlu/sizes", role="designer"))[0] == 204
    status, answer = await admin.call("GET", "/training/nlu/sizes", role="designer")
    assert status == 404 and "nlu/sizes.yml" in answer["detail"]
    assert (await admin.call("DELETE", "/training/nlu/sizes", role="designer"))[0] == 404


async def test_only_rasa_yaml_is_accepted_as_a_body(admin: Admin) -> None:
    for headers in ({"Content-Type": "application/json"}, {"Content-Type": "text/plain"}, {}):
        status, answer = await put(admin, "nlu", "sizes", NLU, headers=headers)
        assert status == 415, (headers, answer)
        assert "application/x-yaml" in answer["detail"]
    status, _ = await put(admin, "nlu", "sizes", NLU,
                          headers={"Content-Type": "application/x-yaml; charset=utf-8"})
    assert status == 201
    for other_name in ("application/yaml", "text/yaml"):  # YAML's registered type, RFC 9512
        status, _ = await put(admin, "nlu", "sizes", NLU, headers={"Content-Type": other_name})
        assert status == 200, other_name
    status, answer = await put(admin, "nlu", "latin", "version: \"3.1\"\n# caf\xe9\n"
                               .encode("latin-1"))
    assert status == 400 and "UTF-8" in answer["detail"]
    status, answer = await put(admin, "nlu", "blank", "  \n")
    assert status == 422 and "empty" in answer["detail"]
    assert (await admin.call("GET", "/training", role="designer"))[1]["total"] == 1


@pytest.mark.parametrize(("kind", "name"), [("intents", "sizes"), ("nlu", "Sizes"),
                                            ("nlu", "-sizes"), ("nlu", "a" * 65),
                                            ("nlu", "size.yml"), ("nlu", "siz%20es")])
async def test_kinds_and_names_are_checked(admin: Admin, kind: str, name: str) -> None:
    status, answer = await put(admin, kind, name, NLU)
    assert status == 422, answer
    assert (await admin.call("GET", f"/training/{kind}/{name}", role="designer"))[0] == 422


async def test_sizes_are_limited(admin: Admin) -> None:
    header = 'version: "3.1"\n'
    filler = "# " + "x" * 1000 + "\n"
    big = header + filler * ((MAX_DRAFT_BYTES - len(header)) // len(filler) + 1)
    status, answer = await put(admin, "nlu", "big", big)
    assert status == 413 and "512" in answer["detail"].replace(",", "")
    just = header + filler * ((MAX_DRAFT_BYTES - len(header)) // len(filler))
    count = MAX_SHOP_BYTES // len(just)
    for number in range(count):
        assert (await put(admin, "nlu", f"part{number}", just))[0] == 201
    status, answer = await put(admin, "nlu", "onemore", just)
    assert status == 413 and "all drafts together" in answer["detail"]
    # Replacing a draft counts its new size, not both.
    assert (await put(admin, "nlu", "part0", just))[0] == 200


async def test_agents_may_not_touch_drafts(admin: Admin) -> None:
    await put(admin, "nlu", "sizes", NLU)
    for method, path in (("GET", "/training"), ("GET", "/training/nlu/sizes"),
                         ("DELETE", "/training/nlu/sizes"), ("POST", "/training/validate"),
                         ("GET", "/training/base"), ("GET", "/training/base/nlu/orders")):
        status, answer = await admin.call(method, path, role="agent")
        assert status == 403 and answer["detail"].startswith("the agent role may not"), path
    assert (await put(admin, "nlu", "sizes", NLU, role="agent"))[0] == 403
    assert (await get_text(admin, "/training/nlu/sizes"))[1] == NLU


async def test_a_shop_sees_only_its_own_drafts(admin: Admin) -> None:
    secret = NLU.replace("where is my bike", "where is my secret tandem")
    assert (await put(admin, "nlu", "sizes", secret, shop=admin.other))[0] == 201
    assert (await admin.call("GET", "/training/nlu/sizes", role="designer"))[0] == 404
    assert (await admin.call("DELETE", "/training/nlu/sizes", role="owner"))[0] == 404
    assert (await admin.call("GET", "/training", role="owner"))[1]["total"] == 0
    assert (await validation(admin)) == {"ok": True, "errors": [], "warnings": [],
                                         "rasa_checked": True}
    # The demo shop's own draft of the same name is its own.
    assert (await put(admin, "nlu", "sizes", NLU))[0] == 201
    assert (await get_text(admin, "/training/nlu/sizes", shop=admin.other))[1] == secret
    assert (await get_text(admin, "/training/nlu/sizes"))[1] == NLU


async def test_writes_are_audited_with_size_and_hash_not_content(admin: Admin) -> None:
    await put(admin, "domain", "sizes", DOMAIN)
    await put(admin, "domain", "sizes", DOMAIN + "# more\n")
    await admin.call("DELETE", "/training/domain/sizes", role="designer")
    async with admin.sessions() as session:
        rows = (await session.execute(select(AuditRow).where(
            AuditRow.tenant_id == admin.demo.id, AuditRow.action.like("training.%"))
            .order_by(AuditRow.id))).scalars().all()
    assert [(r.action, r.target) for r in rows] == [
        ("training.draft.create", "domain/sizes.yml"), ("training.draft.update",
                                                        "domain/sizes.yml"),
        ("training.draft.delete", "domain/sizes.yml")]
    create, update, delete = rows
    assert create.before is None
    assert create.after == {**fingerprint(DOMAIN), "problems": 1}  # ask_size has no examples
    assert update.before == fingerprint(DOMAIN)
    assert delete.before == fingerprint(DOMAIN + "# more\n") and delete.after is None
    assert all(r.actor.startswith("key:") for r in rows)
    assert "frames come in" not in repr([(r.before, r.after) for r in rows])


@pytest_asyncio.fixture
async def billed(admin: Admin, tmp_path: Path) -> AsyncIterator[Admin]:
    """The same database and shops, served with billing on: both shops on the free plan."""
    settings = admin_settings(tmp_path, admin.database_url, STRIPE_API_KEY="sk_test_x",
                              WORKSHOP_URL=str(admin.app.ctx.settings.workshop_url))
    app = create_app(settings, name=f"admin-training-{uuid.uuid4().hex[:8]}")
    app.config.WEBHOOK_WORKER = False
    app.config.BILLING_WORKER = False
    client = RunningAppClient(app)
    try:
        yield Admin(app, client, admin.sessions, settings, admin.demo, admin.other,
                    admin.database_url)
    finally:
        await stop_app(app)


async def test_writing_drafts_needs_a_plan_with_own_models(admin: Admin, billed: Admin) -> None:
    assert (await put(admin, "nlu", "sizes", NLU))[0] == 201  # billing off: no limit
    status, answer = await put(billed, "nlu", "sizes", NLU)
    assert status == 402, answer
    assert answer["limit"] == "own_models" and "own models" in answer["detail"]
    assert (await billed.call("DELETE", "/training/nlu/sizes", role="designer"))[0] == 402
    # Reading and checking stay open; nothing changed.
    assert (await get_text(billed, "/training/nlu/sizes"))[1] == NLU
    assert (await billed.call("POST", "/training/validate", role="designer"))[0] == 200


async def test_a_good_overlay_passes_our_checks(admin: Admin) -> None:
    for kind, text in (("domain", DOMAIN), ("nlu", NLU), ("rules", RULES)):
        status, saved = await put(admin, kind, "sizes", text)
        assert status == 201, saved
    assert saved["problems"] == []
    assert await validation(admin) == {"ok": True, "errors": [], "warnings": [],
                                       "rasa_checked": True}


async def test_a_broken_file_gives_its_line(admin: Admin) -> None:
    broken = NLU.replace("  - intent: check_order_status", "  - intent: check_order_status\n"
                         "   examples: |")  # line 9: a key indented one space off
    status, saved = await put(admin, "nlu", "sizes", broken)
    assert status == 201  # stored all the same, as an editor saves work in progress
    assert [(p["file"], p["line"]) for p in saved["problems"]] == [("nlu/sizes.yml", 9)]
    assert "YAML syntax" in saved["problems"][0]["message"]
    result = await validation(admin)
    assert result["ok"] is False and result["errors"] == saved["problems"]


# Mistakes a designer makes, each with the line their editor shows it on (1-based). PyYAML
# notices some only further on (a key without its colon at the next line, an unclosed quote or
# bracket at the end of the file, on a line after the last one the editor shows).
SYNTAX_SLIPS = [
    ("nlu", 'version: "3.1"\nnlu:\n  - intent: ask_size\n    examples |\n'
            "      - which frame size\n      - what size fits me\n", 4),
    ("nlu", 'version: "3.1"\nnlu:\n  - intent: ask_size\n    examples: |\n'
            "      - which frame size\n  - intent: [ask_fit\n", 6),
    ("rules", 'version: "3.1"\nrules:\n  - rule: size questions\n    steps:\n'
              '      - intent: ask_size\n      - action: "utter_size_guide\n'
              "  - rule: another\n    steps:\n      - intent: greet\n", 6),
    ("stories", 'version: "3.1"\nstories:\n  - story: sizes\n    steps:\n'
                "      - intent: ask_size\n        entities: [size\n"
                "      - action: utter_size_guide", 6),
    ("domain", 'version: "3.1"\nintents\n  - ask_size\nresponses:\n  utter_size_guide:\n'
               '    - text: "S, M or L"\n', 2),
    ("domain", 'version: "3.1"\nintents:\n  - ask_size\nresponses:\n  utter_size_guide:\n'
               '    - text: "S, M or L', 6),
]


@pytest.mark.parametrize(("kind", "text", "line"), SYNTAX_SLIPS,
                         ids=["no-colon", "open-bracket", "open-quote", "open-list",
                              "key-without-colon", "quote-open-at-the-end"])
async def test_a_syntax_error_is_on_the_line_the_editor_shows(admin: Admin, kind: str,
                                                               text: str, line: int) -> None:
    status, saved = await put(admin, kind, "sizes", text)
    assert status == 201, saved
    assert [(p["file"], p["line"]) for p in saved["problems"]] == [(f"{kind}/sizes.yml", line)]
    assert saved["problems"][0]["message"].startswith("YAML syntax error"), saved
    assert line <= len(text.split("\n"))  # a line the editor has


async def test_a_draft_cannot_change_the_base(admin: Admin) -> None:
    rules = """version: "3.1"
rules:
  - rule: greet
    steps:
      - intent: greet
      - action: utter_size_guide
  - rule: check the frame
    steps:
      - intent: ask_size
      - action: action_check_frame
"""
    domain = DOMAIN + """slots:
  order_number:
    type: text
    mappings:
      - type: from_text
"""
    await put(admin, "domain", "sizes", domain)
    await put(admin, "nlu", "sizes", NLU)
    status, saved = await put(admin, "rules", "sizes", rules)
    assert status == 201
    found = {(p["file"], p["line"]): p["message"] for p in (await validation(admin))["errors"]}
    assert set(found) == {("rules/sizes.yml", 3), ("rules/sizes.yml", 10),
                          ("domain/sizes.yml", 9)}, found
    assert "the base has a rule named 'greet' (data/rules/smalltalk.yml:" in found[
        ("rules/sizes.yml", 3)]
    assert "action 'action_check_frame' does not exist" in found[("rules/sizes.yml", 10)]
    assert "slot 'order_number'" in found[("domain/sizes.yml", 9)]
    assert "order_status_form" in found[("domain/sizes.yml", 9)]
    # The PUT's summary holds the problems of that file only.
    assert {p["line"] for p in saved["problems"]} == {3, 10}


async def test_base_texts_flows_and_missing_names_are_explained(admin: Admin) -> None:
    domain = """version: "3.1"
session_config:
  session_expiration_time: 5
responses:
  utter_greet:
    - text: Howdy
forms:
  return_form:
    required_slots:
      - return_reason
"""
    rules = """version: "3.1"
rules:
  - rule: my own answer to order questions
    steps:
      - intent: check_order_status
      - action: utter_goodbye
  - rule: unknown names
    steps:
      - intent: ask_colour
      - action: utter_colour_chart
"""
    await put(admin, "domain", "base", domain)
    await put(admin, "rules", "base", rules)
    found = {(p["file"], p["line"]): p["message"] for p in (await validation(admin))["errors"]}
    assert "session_config belongs to the base" in found[("domain/base.yml", 2)]
    assert "PUT /api/v1/responses/utter_greet" in found[("domain/base.yml", 5)]
    assert "the base defines form 'return_form'" in found[("domain/base.yml", 8)]
    assert "the base's rule 'start the order status form'" in found[("rules/base.yml", 3)]
    assert "intent 'ask_colour' is not in the domain" in found[("rules/base.yml", 9)]
    assert "no response 'utter_colour_chart'" in found[("rules/base.yml", 10)]


async def test_a_story_is_refused_with_the_rule_to_write_instead(admin: Admin) -> None:
    """config.yml's RulePolicy follows rules only: a flow written as a story would never be
    followed, so each story says so where it starts (the PUT and the validation)."""
    stories = RULES.replace("rules:", "stories:").replace("- rule:", "- story:")
    await put(admin, "domain", "sizes", DOMAIN)
    await put(admin, "nlu", "sizes", NLU)
    status, saved = await put(admin, "stories", "sizes", stories)
    assert status == 201  # stored as sent, as every draft
    assert [(p["file"], p["line"]) for p in saved["problems"]] == [("stories/sizes.yml", 3)]
    message = saved["problems"][0]["message"]
    assert "story 'size questions get the size guide' would never be followed" in message
    assert "RulePolicy" in message and "write the flow as a rule" in message
    result = await validation(admin)
    assert result["ok"] is False and result["errors"] == saved["problems"]
    # written as a rule, the same flow passes
    assert (await admin.call("DELETE", "/training/stories/sizes", role="designer"))[0] == 204
    assert (await put(admin, "rules", "sizes", RULES))[1]["problems"] == []
    assert (await validation(admin))["ok"] is True


async def test_rules_that_contradict_each_other_are_found_where_they_are(admin: Admin) -> None:
    """Two rules of the drafts that answer the same intent differently: Rasa's checks let them
    pass and its training refuses them minutes later; ours find them, in two drafts or one."""
    other = """version: "3.1"
rules:
  - rule: frame size answered differently
    steps:
      - intent: ask_size
      - action: utter_anything_else
"""
    for kind, name, text in (("domain", "sizes", DOMAIN), ("nlu", "sizes", NLU),
                             ("rules", "sizes", RULES), ("rules", "gift", other)):
        await put(admin, kind, name, text)
    result = await validation(admin)
    assert result["ok"] is False
    assert [(e["file"], e["line"]) for e in result["errors"]] == [("rules/sizes.yml", 3)]
    message = result["errors"][0]["message"]
    assert ("'size questions get the size guide' answers ask_size with utter_size_guide, but "
            "'frame size answered differently' (rules/gift.yml:3) answers it with "
            "utter_anything_else") in message
    assert "contradict" in message

    assert (await admin.call("DELETE", "/training/rules/gift", role="designer"))[0] == 204
    both = RULES + other.split("rules:\n", 1)[1]
    status, saved = await put(admin, "rules", "sizes", both)
    assert [(p["file"], p["line"]) for p in saved["problems"]] == [("rules/sizes.yml", 7)]
    assert "(rules/sizes.yml:3) answers it with utter_size_guide" in saved["problems"][0][
        "message"]


ENTITY_DOMAIN = DOMAIN + """entities:
  - frame_size
  - email:
      roles:
        - sender
  - item
"""
ENTITY_NLU = """version: "3.1"
nlu:
  - intent: ask_size
    examples: |
      - is [medium](frame_size) right for me
      - do you have it in [M](frame_size:medium)
  - synonym: medium
    examples: |
      - med
      - mid
  - synonym: "1003"
    examples: |
      - 1001
  - synonym: support@example.com
    examples: |
      - our shop address
  - regex: order_number
    examples: |
      - \\d+
  - lookup: email
    examples: |
      - alex@example.com
  - intent: check_order_status
    examples: |
      - where is order [1001](order_number:1003)
      - is my [trainers](frame_size:large) order here
"""


async def test_a_draft_cannot_change_how_the_base_reads_its_entities(admin: Admin) -> None:
    """The walkthrough's synonym "1001" -> "1003" passed every check, and with it live the
    order status flow looked for another order (Rasa's EntitySynonymMapper rewrites any
    entity's value). What would change the base's order numbers, emails or items is refused
    where it is written; synonyms and annotations of the draft's own entities stay."""
    await put(admin, "domain", "sizes", ENTITY_DOMAIN)
    status, saved = await put(admin, "nlu", "sizes", ENTITY_NLU)
    assert status == 201
    found = {(p["file"], p["line"]): p["message"] for p in (await validation(admin))["errors"]}
    assert set(found) == {("domain/sizes.yml", 10), *(("nlu/sizes.yml", line)
                                                       for line in (13, 14, 17, 20, 25, 26))
                          }, found
    # the base's entity, redefined with roles (a plain `- item` may list it again)
    assert found[("domain/sizes.yml", 10)].startswith(
        "the base defines entity 'email' at bot/domain/orders.yml:")
    assert "cannot redefine it or change its roles" in found[("domain/sizes.yml", 10)]
    # a synonym whose text reads as an order number: every 1001 would become 1003
    assert found[("nlu/sizes.yml", 13)].startswith(
        "synonym '1003': '1001' can be a value of the base's entity 'order_number' (it matches "
        "the base's pattern for order_number, data/nlu/patterns.yml:")
    assert "EntitySynonymMapper would turn it into '1003'" in found[("nlu/sizes.yml", 13)]
    assert "cannot change how the base's entities are read" in found[("nlu/sizes.yml", 13)]
    # ... or that turns the draft's words into an email address
    assert found[("nlu/sizes.yml", 14)].startswith(
        "synonym 'support@example.com': 'support@example.com' can be a value of the base's "
        "entity 'email'")
    assert "regex 'order_number' is named after the base's entity" in found[
        ("nlu/sizes.yml", 17)]
    assert "RegexEntityExtractor" in found[("nlu/sizes.yml", 17)]
    assert "lookup 'email' is named after the base's entity" in found[("nlu/sizes.yml", 20)]
    # annotations that map values are synonyms too
    assert found[("nlu/sizes.yml", 25)].startswith(
        "[1001](order_number:1003) gives the base's entity 'order_number' the synonym '1003'")
    assert "annotate it as [1001](order_number)" in found[("nlu/sizes.yml", 25)]
    assert found[("nlu/sizes.yml", 26)].startswith(
        "the synonym [trainers](frame_size:large): 'trainers' can be a value of the base's "
        "entity 'item' (the base lists it as item, data/nlu/item_lookup.yml:")
    # The PUT of the nlu draft shows the same, for that file.
    assert [p["line"] for p in saved["problems"]] == [13, 14, 17, 20, 25, 26]


GUARDED_RULES = """version: "3.1"
rules:
  - rule: thank at the start of a conversation
    conversation_start: true
    steps:
      - intent: thank
      - action: utter_size_guide
  - rule: greet after a handoff was asked gets the size guide
    condition:
      - slot_was_set:
          - handoff_offered: true
    steps:
      - intent: greet
      - action: utter_size_guide
  - rule: yes to an offered person is no longer a person
    condition:
      - slot_was_set:
          - handoff_offered: true
    steps:
      - intent: affirm
      - action: utter_anything_else
  - rule: thank during the order status form gets the size guide
    condition:
      - active_loop: order_status_form
    steps:
      - intent: thank
      - action: utter_size_guide
      - action: order_status_form
      - active_loop: order_status_form
  - rule: size questions at the start get the size guide
    conversation_start: true
    steps:
      - intent: ask_size
      - action: utter_size_guide
"""


async def test_a_condition_does_not_let_a_rule_change_a_base_flow(admin: Admin) -> None:
    """The walkthrough's rules on thank and greet passed with a condition or at a
    conversation's start (Rasa's RulePolicy then prefers them to the base's rule): refused as
    a plain rule is, whatever the condition; on the draft's own intents they stay."""
    for kind, text in (("domain", DOMAIN), ("nlu", NLU), ("rules", GUARDED_RULES)):
        await put(admin, kind, "sizes", text)
    found = {(p["file"], p["line"]): p["message"] for p in (await validation(admin))["errors"]}
    assert set(found) == {("rules/sizes.yml", line) for line in (3, 8, 15, 22)}, found
    assert found[("rules/sizes.yml", 3)].startswith(
        "'thank at the start of a conversation' answers thank with utter_size_guide at a "
        "conversation's start, but the base's rule 'thanks' (data/rules/smalltalk.yml:")
    assert found[("rules/sizes.yml", 8)].startswith(
        "'greet after a handoff was asked gets the size guide' answers greet with "
        "utter_size_guide under its condition, but the base's rule 'greet' (")
    # the same answer as the base's plain rule, but it would take the place of the base's
    # "yes to an offered person" (action_handoff)
    assert found[("rules/sizes.yml", 15)].startswith(
        "'yes to an offered person is no longer a person' starts with affirm under its "
        "condition, which the base's rule")
    for message in found.values():
        assert "a draft cannot change a base flow, whatever the rule's condition: use a new " \
               "intent" in message


# The walkthrough's form (tests/gift_form_drafts.py), answering thanks while it asks, and an
# annotated synonym of its own entity.
FORM_DOMAIN = GIFT_DOMAIN + """  utter_height_thanks:
    - text: "You're welcome! And how tall is the rider?"
"""
FORM_NLU = GIFT_NLU + """  - intent: ask_height_help
    examples: |
      - I am [six foot](bike_height:183 cm), which size
"""
FORM_RULES = GIFT_RULES + """  - rule: thank during the height form
    condition:
      - active_loop: height_form
    steps:
      - intent: thank
      - action: utter_height_thanks
      - action: height_form
      - active_loop: height_form
"""


async def test_a_rule_inside_a_drafts_own_form_may_answer_a_base_intent(admin: Admin) -> None:
    """A condition on the draft's own form keeps the rule out of the base's flows: a thanks
    while the draft's form asks is the draft's to answer; its annotated synonym (six foot ->
    183 cm) is of its own entity."""
    for kind, text in (("nlu", FORM_NLU), ("domain", FORM_DOMAIN), ("rules", FORM_RULES)):
        status, saved = await put(admin, kind, "height", text)
        assert status == 201, saved
    assert saved["problems"] == [], saved
    assert (await validation(admin))["errors"] == []


async def test_the_base_can_be_read(admin: Admin) -> None:
    status, base = await admin.call("GET", "/training/base", role="designer")
    assert status == 200
    paths = {f["path"] for f in base["files"]}
    assert {"data/nlu/orders.yml", "data/rules/order_status.yml", "bot/domain/orders.yml",
            "data/tests/test_returns.yml"} <= paths
    assert "order_status_form" in base["forms"] and "action_handoff" in base["actions"]
    assert "check_order_status" in base["intents"] and "greet" in base["rules"]
    status, text, content_type = await get_text(admin, "/training/base/nlu/orders")
    assert status == 200 and content_type.startswith("application/x-yaml")
    assert text == (ROOT / "data/nlu/orders.yml").read_text(encoding="utf-8")
    assert (await admin.call("GET", "/training/base/nlu/nothing", role="designer"))[0] == 404


async def test_the_document_describes_yaml_bodies_and_answers() -> None:
    paths = API.openapi(title=TITLE, version=VERSION)["paths"]
    item = paths["/api/v1/training/{kind}/{name}"]
    assert list(item["put"]["requestBody"]["content"]) == ["application/x-yaml"]
    assert {"200", "201", "402", "413", "415", "422"} <= set(item["put"]["responses"])
    assert list(item["get"]["responses"]["200"]["content"]) == ["application/x-yaml"]
    kind = next(p for p in item["get"]["parameters"] if p["name"] == "kind")
    assert kind["schema"]["enum"] == ["nlu", "rules", "stories", "domain", "tests"]
    validate = paths["/api/v1/training/validate"]["post"]["responses"]["200"]
    assert "application/json" in validate["content"]


# The walkthrough's responses: a placeholder with a typo and one of the bot's own slots, a
# variant for "twilio" (a provider, not a channel), buttons whose payloads name an intent and
# an entity nobody defines, and entities that are not JSON.
RESPONSES_DOMAIN = DOMAIN + """  utter_size_for_order:
    - text: "Your order {ordr_number} ships from {tenant_id}; size {{S}} fits most."
    - text: "Frames for order {order_number} come in S and M."
      channel: twilio
      buttons:
        - title: "Small"
          payload: '/choose_size{"frame_size": "S"}'
        - title: "Tell me more"
          payload: '/ask_size{size: S}'
"""


async def test_responses_are_checked_as_the_bot_would_say_them(admin: Admin) -> None:
    """What passed every check and misbehaved live: the visitor read "{ordr_number}" and the
    shop's id, the twilio variant reached nobody, the buttons sent words to the NLU instead
    of an intent. Each is refused on its own line, saying what the visitor would get."""
    await put(admin, "nlu", "sizes", NLU)
    status, saved = await put(admin, "domain", "sizes", RESPONSES_DOMAIN)
    assert status == 201
    found = [(p["line"], p["message"]) for p in saved["problems"]]
    assert [line for line, _ in found] == [9, 9, 11, 14, 14, 16], found
    typo, internal, channel, intent, entity, broken = (message for _, message in found)
    assert typo.startswith("response 'utter_size_for_order': {ordr_number} names no slot (did "
                           "you mean {order_number}?), so the bot would say '{ordr_number}'")
    assert "{tenant_id} is a slot the bot keeps for its own bookkeeping" in internal
    assert "channel 'twilio' is none of this bot's channels" in channel
    assert "rest, web, sms, whatsapp, email" in channel
    assert "payload /choose_size names no intent of the base or your drafts" in intent
    assert "read '/choose_size' as words the visitor typed" in intent
    assert "sets entity 'frame_size', which is not defined" in entity
    assert "the button 'Tell me more' sends /ask_size{size: S}, whose entities are not a " \
           "JSON object" in broken
    assert (await validation(admin))["errors"] == saved["problems"]
    # written right, the same responses pass
    fixed = (RESPONSES_DOMAIN.replace("{ordr_number} ships from {tenant_id}", "{order_number}")
             .replace("twilio", "sms").replace("/choose_size{", "/ask_size{")
             .replace('"frame_size"', '"order_number"').replace("{size: S}", ""))
    assert (await put(admin, "domain", "sizes", fixed))[1]["problems"] == []


async def test_an_annotation_nested_too_deep_is_unreadable_not_a_500(admin: Admin) -> None:
    """An annotation's JSON nested past the parser's depth raised RecursionError while the
    draft was read: a 500 on saving it, and on every validation after. (5000 levels: the
    annotation patterns take time quadratic in the brackets of one line, 27 s for 100 000.)"""
    nested = "[" * 5000 + "]" * 5000
    text = NLU + f'      - is [six foot]{{"entity": "size", "value": {nested}}} too tall\n'
    status, saved = await put(admin, "nlu", "sizes", text)
    assert status == 201, saved
    assert (await get_text(admin, "/training/nlu/sizes"))[1] == text
    assert (await validation(admin))["errors"] == saved["problems"]


@pytest.mark.parametrize("nested", ['{"size": ' * 100 + '"S"' + "}" * 100,
                                    '{"size": ' + "[" * 100_000 + "]" * 100_000 + "}"],
                         ids=["past our bound", "past the parser"])
async def test_a_payloads_entities_nested_too_deep_are_a_problem_not_a_500(
        admin: Admin, nested: str) -> None:
    """A button's /intent{json} payload nested past the parser's depth raised RecursionError
    while the domain draft was read: a 500 on saving it, and on every validation after. It is
    refused on its line as entities that are not a JSON object, and the message quotes the
    payload's start only, not its 200 KB."""
    text = DOMAIN + ("  utter_pick_size:\n"
                     "    - text: \"Which size?\"\n"
                     "      buttons:\n"
                     "        - title: \"Small\"\n"
                     f"          payload: '/ask_size{nested}'\n")
    await put(admin, "nlu", "sizes", NLU)
    status, saved = await put(admin, "domain", "sizes", text)
    assert status == 201, saved
    assert [p["line"] for p in saved["problems"]] == [12], saved
    message = saved["problems"][0]["message"]
    assert message.startswith("response 'utter_pick_size': the button 'Small' sends "
                              '/ask_size{"size": ')
    assert "whose entities are not a JSON object (JSON nested more than 64 levels deep)" \
        in message
    assert len(message) < 400
    assert (await get_text(admin, "/training/domain/sizes"))[1] == text
    assert (await validation(admin))["errors"] == saved["problems"]


async def test_a_line_of_brackets_is_read_at_once(admin: Admin) -> None:
    """The annotation patterns took time quadratic in the `[` of one line: 100 000 held the
    admin service 27 s, every other request waiting. Read in linear time now; the bound is
    generous, only a guard against the quadratic (tens of seconds), not a benchmark."""
    await put(admin, "domain", "sizes", DOMAIN)
    text = NLU + "      - " + "[" * 100_000 + "\n"
    started = time.perf_counter()
    status, saved = await put(admin, "nlu", "sizes", text)
    assert time.perf_counter() - started < 2, "the brackets took as long as before"
    assert status == 201 and saved["problems"] == [], saved


FRAME_CODES_DOMAIN = DOMAIN + """entities:
  - frame_code
  - frame_colour
"""
FRAME_CODES_NLU = NLU + """  - intent: ask_size
    examples: |
      - my frame code is [4471](frame_code)
      - is it in [red](frame_colour)
  - regex: frame_code
    examples: |
      - FC-\\d{4}
      - \\d{4}
  - lookup: frame_colour
    examples: |
      - red
      - 1002
"""


async def test_a_pattern_of_the_shops_entity_may_not_take_the_bases_values(
        admin: Admin) -> None:
    """The walkthrough's frame codes: a regex \\d{4} for the shop's own entity matched every
    order number, so "1001" typed alone came with a frame_code and no longer started the order
    status form. Refused with the base example whose value it would take; a lookup the
    extractor does not read (config.yml) is a warning; a pattern of its own values passes."""
    await put(admin, "domain", "sizes", FRAME_CODES_DOMAIN)
    status, saved = await put(admin, "nlu", "sizes", FRAME_CODES_NLU)
    assert status == 201
    assert [p["line"] for p in saved["problems"]] == [18], saved
    message = saved["problems"][0]["message"]
    assert message.startswith(
        "regex 'frame_code' also matches '1001' in the base's example \"Where's order #1001? my "
        "email is alex@example.com\" (data/nlu/orders.yml:12), which marks '#1001' as "
        "order_number: Rasa's RegexEntityExtractor would find frame_code there too"), message
    assert "the base's rule 'an order number out of the blue starts the order status form' " \
           "(data/rules/order_status.yml:" in message
    result = await validation(admin)
    assert result["errors"] == saved["problems"]
    assert [(w["file"], w["line"]) for w in result["warnings"]] == [("nlu/sizes.yml", 22)]
    assert result["warnings"][0]["message"].startswith(
        "lookup 'frame_colour' also matches '1002' in the base's example \"order 1002 "
        "status?\" (data/nlu/orders.yml:13)")
    assert "reads no lookup tables" in result["warnings"][0]["message"]
    own = FRAME_CODES_NLU.replace("      - \\d{4}\n", "").replace("      - 1002\n", "")
    assert (await put(admin, "nlu", "sizes", own))[1]["problems"] == []
    assert await validation(admin) == {"ok": True, "errors": [], "warnings": [],
                                       "rasa_checked": True}
