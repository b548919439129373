"""POST /training/validate with Rasa's own checks (issue 15): the admin service sends the
shop's drafts to the real workshop (bot/workshop.py, Rasa's interpreter) and merges Rasa's
findings with ours; with the workshop down the answer is 503, never a silent ok; with YAML
syntax errors Rasa is not asked; what Rasa only warns about is a warning, never an error."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from admin_api.workshop import WorkshopClient
from tests.admin_api.conftest import Admin
from tests.admin_api.test_training_drafts import DOMAIN, NLU, RULES, put
from tests.bot.workshop_process import running_workshop
from tests.gift_form_drafts import GIFT_DOMAIN, GIFT_NLU, GIFT_RULES
from tests.servers import free_port

pytestmark = pytest.mark.asyncio

# A second story for ask_size that goes on differently: our checks pass it (both responses
# exist), Rasa's story structure check finds the conflict.
STORIES = """version: "3.1"
stories:
  - story: size then the guide
    steps:
      - intent: ask_size
      - action: utter_size_guide
  - story: size then a shrug
    steps:
      - intent: ask_size
      - action: utter_size_shrug
"""
SHRUG = DOMAIN + """  utter_size_shrug:
    - text: "Sizes vary."
"""


@pytest.fixture(scope="module")
def workshop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # The admin fixture's RASA_TOKEN (tests/admin_api/conftest.py admin_settings): both sides
    # derive the JWT key from it.
    with running_workshop(tmp_path_factory.mktemp("workshop"),
                          "test-rasa-token-" + "x" * 20) as base:
        yield base


async def validate(admin: Admin) -> tuple[int, Any]:
    return await admin.call("POST", "/training/validate", role="designer")


async def test_rasas_findings_come_back_with_ours(admin: Admin, workshop: str) -> None:
    admin.use_workshop(workshop)
    for kind, text in (("domain", DOMAIN), ("nlu", NLU), ("rules", RULES)):
        assert (await put(admin, kind, "sizes", text))[0] == 201
    status, body = await validate(admin)
    assert status == 200, body
    assert body == {"ok": True, "errors": [], "warnings": [], "rasa_checked": True}

    assert (await put(admin, "domain", "sizes", SHRUG))[0] == 200
    # ours: stories are never followed (RulePolicy), and these two contradict each other
    ours = (await put(admin, "stories", "sizes", STORIES))[1]["problems"]
    assert {(p["line"], p["message"].split(" ", 1)[0]) for p in ours} == {
        (3, "story"), (7, "story"), (7, "'size")}, ours
    status, body = await validate(admin)
    assert status == 200, body
    assert body["ok"] is False and body["rasa_checked"] is True
    conflict = [e for e in body["errors"] if "conflict" in e["message"]]
    assert conflict, body
    # at the story Rasa names first (the order of its message varies between runs)
    assert conflict[0]["file"] == "stories/sizes.yml" and conflict[0]["line"] in (3, 7)
    assert conflict[0]["message"].startswith("Rasa: ")
    assert all(e["file"].endswith("sizes.yml") for e in body["errors"]), body


async def test_a_workshop_that_does_not_answer_is_503(admin: Admin) -> None:
    admin.use_workshop(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert (await put(admin, "nlu", "sizes", NLU))[0] == 201
    status, body = await validate(admin)
    assert status == 503, body
    assert body["detail"].startswith("Rasa's own checks could not run")


async def test_a_workshop_that_takes_too_long_is_503_not_500(admin: Admin) -> None:
    """2 MB of drafts took Rasa near the admin's 30 s timeout (bot/rasa_checks.py `_importer`
    has the numbers): past it the designer gets a 503 that says to try again, never a 500.
    A socket that takes connections and never answers stands for the busy workshop, and the
    admin's own client waits 1 s instead of 30."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(8)  # the kernel completes connections; nothing ever reads or answers
        assert (await put(admin, "nlu", "sizes", NLU))[0] == 201  # the app is up
        admin.app.ctx.workshop = WorkshopClient(
            f"http://127.0.0.1:{busy.getsockname()[1]}", admin.settings.rasa_jwt_key,
            client=httpx.AsyncClient(timeout=httpx.Timeout(1.0)))
        status, body = await validate(admin)
    assert status == 503, body
    assert body["detail"].startswith("Rasa's own checks could not run") \
        and "try again" in body["detail"]


async def test_yaml_syntax_errors_skip_rasas_checks(admin: Admin) -> None:
    admin.use_workshop(f"http://127.0.0.1:{free_port()}")  # would be 503 if it were asked
    assert (await put(admin, "nlu", "sizes", NLU + "  - intent: [\n"))[0] == 201
    status, body = await validate(admin)
    assert status == 200, body
    assert body["ok"] is False and body["rasa_checked"] is False
    assert any("YAML syntax" in e["message"] for e in body["errors"]), body


async def test_a_draft_that_does_not_parse_brings_no_findings_about_what_it_defines(
        admin: Admin) -> None:
    """The NLU draft's YAML is broken, so it defines nothing for now: the domain draft's
    intent is not also reported as having no examples (the walkthrough's cascade)."""
    admin.use_workshop(f"http://127.0.0.1:{free_port()}")  # Rasa's checks are skipped
    assert (await put(admin, "domain", "bikes", DOMAIN))[0] == 201
    assert (await put(admin, "nlu", "sizes", NLU + "  - intent: [\n"))[0] == 201
    status, body = await validate(admin)
    assert status == 200 and body["ok"] is False, body
    assert [e["file"] for e in body["errors"]] == ["nlu/sizes.yml"], body
    assert not any("no examples" in e["message"] for e in body["errors"])




async def test_a_form_and_a_new_intent_without_a_rule_can_train(admin: Admin,
                                                                workshop: str) -> None:
    """The walkthrough's form (its utter_ask_rider_height said by the form, no rule) and an
    intent a gap brought in before any rule answers it: ok, so POST /models trains them; the
    intent comes back as a warning that says what it means for the bot."""
    admin.use_workshop(workshop)
    for kind, text in (("nlu", GIFT_NLU), ("rules", GIFT_RULES), ("domain", GIFT_DOMAIN)):
        status, saved = await put(admin, kind, "gift", text)
        assert status == 201, saved
    assert saved["problems"] == [], saved
    status, body = await validate(admin)
    assert status == 200, body
    assert body["ok"] is True and body["errors"] == [], body
    assert [(w["file"], w["line"]) for w in body["warnings"]] == [("domain/gift.yml", 4)], body
    warning = body["warnings"][0]["message"]
    assert warning.startswith("Rasa: The intent 'ask_gift_wrap' is not used in any story or "
                              "rule.") and "fallback" in warning
    assert "utter_ask_rider_height" not in repr(body)


# A second domain draft whose intent and response nothing uses yet, and a test story (not
# training data: Rasa's checks never read it) that already expects them.
BETA_DOMAIN = """version: "3.1"
intents:
  - ask_frame_colour
responses:
  utter_frame_colours:
    - text: "Frames come in red and blue."
"""
BETA_TESTS = """version: "3.1"
stories:
  - story: colour questions get the colours one day
    steps:
      - user: |
          which colours does the frame come in
        intent: ask_frame_colour
      - action: utter_frame_colours
"""


async def test_rasas_messages_land_where_the_thing_they_name_is_defined(
        admin: Admin, workshop: str) -> None:
    """The walkthrough's designer saw Rasa's warnings about domain/colour.yml's intent and
    response at tests/colour.yml (the first draft that mentioned the names): an unused or
    example-less definition belongs where a domain draft defines it."""
    admin.use_workshop(workshop)
    for kind, name, text in (("domain", "sizes", DOMAIN), ("nlu", "sizes", NLU),
                             ("rules", "sizes", RULES), ("domain", "colour", BETA_DOMAIN),
                             ("tests", "colour", BETA_TESTS)):
        assert (await put(admin, kind, name, text))[0] == 201
    status, body = await validate(admin)
    assert status == 200, body
    found = {(w["file"], w["line"], w["message"].split("'")[1]) for w in body["warnings"]}
    assert found == {("domain/colour.yml", 3, "ask_frame_colour"),
                     ("domain/colour.yml", 5, "utter_frame_colours")}, body
    assert len(body["warnings"]) == 3  # ask_frame_colour: no examples, and no rule
    # ours says the same place for the missing examples
    assert [(e["file"], e["line"]) for e in body["errors"]] == [("domain/colour.yml", 3)], body
