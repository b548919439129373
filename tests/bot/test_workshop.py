"""bot/workshop.py in Rasa's interpreter: Rasa's own checks of a shop's drafts over the base,
with each finding on the draft and line it is about.

One real workshop process (`python -m bot.workshop`, .venv-bot) for the module, on a free
port (tests/bot/workshop_process.py), called over HTTP with the JWT the admin service mints
(core/rasa_http.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from bot.rasa_checks import REMEMBERED, Checker, Report
from core.rasa_http import rasa_api_token
from core.settings import BotSettings
from tests.bot.workshop_process import running_workshop
from tests.gift_form_drafts import GIFT_DOMAIN, GIFT_NLU, GIFT_RULES

TOKEN = "workshop-test-token-" + "x" * 20
KEY = BotSettings.from_env({"RASA_TOKEN": TOKEN}).rasa_jwt_key

DOMAIN = """version: "3.1"
intents:
  - ask_frame_size
responses:
  utter_frame_size:
    - text: "Our frames come in S, M and L."
"""
NLU = """version: "3.1"
nlu:
  - intent: ask_frame_size
    examples: |
      - is the frame size right for me?
      - which frame size do I need
      - what size frame fits someone who is 180 cm
"""
RULES = """version: "3.1"
rules:
  - rule: frame size questions get the size guide
    steps:
      - intent: ask_frame_size
      - action: utter_frame_size
"""
GOOD = {"domain/bikes.yml": DOMAIN, "nlu/bikes.yml": NLU, "rules/bikes.yml": RULES}


@pytest.fixture(scope="module")
def workshop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_workshop(tmp_path_factory.mktemp("workshop"), TOKEN) as base:
        yield base


def check(base: str, files: dict[str, str], token: str | None = None) -> httpx.Response:
    token = rasa_api_token(KEY) if token is None else token
    return httpx.post(f"{base}/validate", json={"files": files}, timeout=60,
                      headers={"Authorization": f"Bearer {token}"} if token else {})


def errors(base: str, files: dict[str, str]) -> list[dict[str, Any]]:
    answer = check(base, files)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["errors"]
    return found


def test_the_same_drafts_are_checked_once() -> None:
    """A designer validates, then trains the same drafts (validated again before training):
    Rasa's checks run once for them, in any order, until newer drafts push them out."""
    checked: list[dict[str, str]] = []

    class Counting(Checker):
        def _check(self, drafts: dict[str, str]) -> Report:
            checked.append(drafts)
            return Report([], True)

    checker = Counting()
    first = checker.check(GOOD)
    assert checker.check(dict(reversed(GOOD.items()))) is first
    checker.check({**GOOD, "nlu/bikes.yml": NLU + "      - frame size for kids\n"})
    assert len(checked) == 2
    for n in range(REMEMBERED):
        checker.check({f"nlu/bikes{n}.yml": NLU})
    checker.check(GOOD)
    assert len(checked) == 3 + REMEMBERED


def test_without_the_right_jwt_nothing_is_checked(workshop: str) -> None:
    wrong_key = jwt.encode({"exp": int(time.time()) + 60}, "another key " * 4, algorithm="HS256")
    expired = jwt.encode({"exp": int(time.time()) - 5}, KEY.reveal(), algorithm="HS256")
    for token in ("", "not-a-jwt", wrong_key, expired):
        answer = check(workshop, GOOD, token=token)
        assert answer.status_code == 401, (token, answer.text)
        assert "detail" in answer.json()


def test_bad_bodies_are_400_with_a_detail(workshop: str) -> None:
    headers = {"Authorization": f"Bearer {rasa_api_token(KEY)}"}
    for body in (b"{not json", b"[]", b'{"files": {"bikes.yml": "x"}}',
                 b'{"files": {"nlu/bikes.yml": 3}}'):
        answer = httpx.post(f"{workshop}/validate", content=body, headers=headers, timeout=10)
        assert answer.status_code == 400, body
        assert answer.json()["detail"]
    too_big = httpx.post(f"{workshop}/validate", content=b"x" * (5 * 1024 * 1024),
                         headers=headers, timeout=10)
    assert too_big.status_code == 413


def test_a_good_overlay_has_no_errors(workshop: str) -> None:
    answer = check(workshop, GOOD)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"errors": [], "warnings": [], "complete": True}


# The walkthrough's form (tests/gift_form_drafts.py) and a response no rule says.
FORM_DOMAIN = GIFT_DOMAIN + """  utter_gift_wrap:
    - text: "We wrap gifts for free."
"""


def test_what_rasa_only_warns_about_is_a_warning_and_a_forms_question_not_even_that(
        workshop: str) -> None:
    """Rasa never fails a validation on an intent or a response "not used in any story or
    rule": they come back as warnings, which never stop a training, with what they mean; a
    form's utter_ask_<slot> is how the form asks, so nothing is said about it."""
    answer = check(workshop, {"domain/gift.yml": FORM_DOMAIN, "nlu/gift.yml": GIFT_NLU,
                              "rules/gift.yml": GIFT_RULES})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["errors"] == [], body
    warned = {(w["file"], w["line"]): w["message"] for w in body["warnings"]}
    assert set(warned) == {("domain/gift.yml", 4), ("domain/gift.yml", 22)}, body
    assert warned[("domain/gift.yml", 4)].startswith(
        "The intent 'ask_gift_wrap' is not used in any story or rule.")
    assert "gets the fallback answer" in warned[("domain/gift.yml", 4)]
    assert "'utter_gift_wrap' is not used" in warned[("domain/gift.yml", 22)]
    assert "utter_ask_rider_height" not in answer.text


def test_a_test_story_may_expect_what_the_bot_does_not_do_yet(workshop: str) -> None:
    """Test stories are not training data: one that expects another answer than a rule gives
    is no story structure conflict (the evaluation shows it failing instead)."""
    wanted = """version: "3.1"
stories:
  - story: frame size answered with a greeting one day
    steps:
      - intent: ask_frame_size
      - action: utter_greet
"""
    assert errors(workshop, {**GOOD, "tests/bikes.yml": wanted}) == []


def test_an_intent_nobody_defines_and_an_unknown_action_are_found_where_they_are_used(
        workshop: str) -> None:
    ghost = RULES + """  - rule: ghost intent
    steps:
      - intent: nobody_defines_this
      - action: utter_frame_size
"""
    story = """version: "3.1"
stories:
  - story: a custom action nobody wrote
    steps:
      - intent: ask_frame_size
      - action: action_measure_the_rider
"""
    found = errors(workshop, {**GOOD, "rules/bikes.yml": ghost, "stories/bikes.yml": story})
    intent = [e for e in found if "nobody_defines_this" in e["message"]]
    assert intent and {(e["file"], e["line"]) for e in intent} == {("rules/bikes.yml", 9)}
    assert any("not listed in the domain" in e["message"] for e in intent)
    action = [e for e in found if "action_measure_the_rider" in e["message"]]
    assert [(e["file"], e["line"]) for e in action] == [("stories/bikes.yml", 6)], found
    assert {e["file"] for e in found} <= {"rules/bikes.yml", "stories/bikes.yml"}, found


def test_rasas_yaml_schema_errors_carry_the_line(workshop: str) -> None:
    broken = """version: "3.1"
rules:
  - rule: steps are not a list
    steps: utter_frame_size
"""
    answer = check(workshop, {**GOOD, "rules/bikes.yml": broken})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["complete"] is False  # the checks across files wait for a readable set
    assert [(e["file"], e["line"]) for e in body["errors"]] == [("rules/bikes.yml", 4)], body
    assert "steps" in body["errors"][0]["message"]


def test_the_bases_own_warnings_are_not_the_designers(workshop: str) -> None:
    # Alone, the base makes Rasa warn (responses its custom actions say are "not used in any
    # story or rule"); a draft that only adds examples to a base intent hears none of it.
    examples = """version: "3.1"
nlu:
  - intent: greet
    examples: |
      - ahoy there
"""
    assert errors(workshop, {"nlu/more.yml": examples}) == []


def call(base: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{base}{path}", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {rasa_api_token(KEY)}"})


def test_training_and_switching_refuse_what_they_cannot_take(workshop: str) -> None:
    """The routes' edges; real training runs in tests/integration/test_shop_models.py and
    the queue's behaviour in tests/bot/test_training.py."""
    version = "f" * 32
    for body in ({"shop": "../etc", "version": version, "files": GOOD},
                 {"shop": "shop-a", "version": "v1", "files": GOOD},
                 {"shop": "shop-a", "version": version, "files": {"bikes.yml": "x"}},
                 {"shop": "shop-a", "version": version}):
        answer = call(workshop, "POST", "/train", body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["detail"]
    unknown = call(workshop, "GET", f"/train/{version}")
    assert unknown.status_code == 404 and "submit it again" in unknown.json()["detail"]
    assert call(workshop, "DELETE", f"/train/{version}").status_code == 404
    # a shop can only be switched to a model that exists; back to the base always
    missing = call(workshop, "PUT", "/shops/shop-a/active", {"version": version})
    assert missing.status_code == 404 and "no trained model" in missing.json()["detail"]
    assert call(workshop, "PUT", "/shops/shop-a/active", {}).status_code == 400
    assert call(workshop, "PUT", "/shops/shop-a/active", {"version": "x"}).status_code == 400
    base = call(workshop, "PUT", "/shops/shop-a/active", {"version": None})
    assert base.status_code == 200 and base.json() == {"shop": "shop-a", "version": None}
    assert call(workshop, "GET", "/shops/shop-a/active").json() == {"shop": "shop-a",
                                                                    "version": None}
    for method, path in (("GET", f"/train/{version}"), ("PUT", "/shops/shop-a/active"),
                         ("POST", "/train"), ("POST", "/evaluate"),
                         ("GET", f"/evaluate/{version}")):
        assert httpx.request(method, f"{workshop}{path}", timeout=10).status_code == 401


def test_evaluating_refuses_what_it_cannot_take(workshop: str) -> None:
    """The /evaluate routes' edges; a real evaluation runs in
    tests/integration/test_shop_models.py and the queue's in tests/bot/test_training.py."""
    version = "e" * 32
    good = {"shop": "shop-a", "version": version, "files": GOOD,
            "against": {"version": None, "files": {}}, "messages": ["where is my order?"]}
    refused: list[dict[str, Any]] = [
        {"against": None}, {"against": {"files": {}}}, {"against": {"version": "x", "files": {}}},
        {"messages": "hello"}, {"messages": [1, 2]}, {"version": "v1"},
        {"files": {"bikes.yml": "x"}}]
    for bad in refused:
        answer = call(workshop, "POST", "/evaluate", {**good, **bad})
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["detail"]
    missing = call(workshop, "POST", "/evaluate", good)  # never trained
    assert missing.status_code == 404 and "train it first" in missing.json()["detail"]
    unknown = call(workshop, "GET", f"/evaluate/{version}")
    assert unknown.status_code == 404 and "submit it again" in unknown.json()["detail"]
    assert call(workshop, "DELETE", f"/evaluate/{version}").status_code == 404
