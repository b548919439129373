"""Issue 15 through the real stack: a designer teaches the demo shop (shop A) an intent of its
own over the admin API, the workshop trains it with Rasa, activation switches the Rasa
runtime while a conversation runs, the new intent answers on REST and in the widget while
another shop's bot is unchanged, rollback restores the old behaviour, and the runtime unloads
and reloads shop models under its memory budget (the stack's BOT_MODEL_MEMORY_MB is 1 MB:
one shop model resident at a time). Last, a training started by mistake is cancelled: its
trainer process ends and the next training gets the slot at once; both versions are deleted.

One real training and testing (about 90 s on 2 cores), on the PostgreSQL + Redis stack when
the suite has one, else on the embedded one; the tests of this module run in order on the
model it produced.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devtools.demo_shop import DEMO_TENANT_ID
from tests.conftest import services
from tests.integration.conftest import Visitor
from tests.integration.stack import Stack
from tests.integration.test_agent_inbox import WebVisitor

pytestmark = pytest.mark.integration

ANSWER = "Our frames come in S (150-165 cm), M (165-180 cm) and L (180-195 cm)"
QUESTION = "which frame size do I need? I'm 178 cm"
DOMAIN = f"""version: "3.1"
intents:
  - ask_frame_size
responses:
  utter_frame_size:
    - text: "{ANSWER}."
"""
NLU = """version: "3.1"
nlu:
  - intent: ask_frame_size
    examples: |
      - is the frame size right for me?
      - which frame size do I need
      - what frame size fits someone who is 180 cm
      - I'm 165 cm, which frame should I get
      - what size bike frame for my height
      - frame size for a tall rider
      - is a medium frame too big for me
      - which frame fits a 170cm woman
      - do I need a large or a medium frame
      - how do I pick the right frame size
      - frame size chart
      - what frame size for 6 foot
"""
RULES = """version: "3.1"
rules:
  - rule: frame size questions get the size guide
    steps:
      - intent: ask_frame_size
      - action: utter_frame_size
"""
# Takes over the base's order-status flow: refused.
HIJACK = """version: "3.1"
rules:
  - rule: order questions get the size guide
    steps:
      - intent: check_order_status
      - action: utter_frame_size
"""
# The shop's own conversation test: fails on the base (no such intent), passes on its model.
TESTS = """version: "3.1"
stories:
  - story: a rider asks which frame size fits
    steps:
      - user: |
          which frame size should I get? I'm 180 cm
        intent: ask_frame_size
      - action: utter_frame_size
"""
YAML = {"Content-Type": "application/x-yaml"}
TRAINING = 600.0  # seconds: about 40 here; over 300 seen on a machine at half speed under the
# whole suite (a limit to stop waiting, not a measure: bench/models.py times training)


@pytest.fixture(scope="module")
def designer(stack: Stack) -> Iterator[httpx.Client]:
    found = services()
    if stack.database_url is None and found["database_url"] and found["redis_url"]:
        # A real training and testing takes about 90 s: once a suite, on the production shape
        # when it is there (the embedded one otherwise). The runtime's routing does not depend
        # on the storage; the tracker store's cache is tested on both (tests/bot/test_stores.py).
        pytest.skip("trained once, on PostgreSQL + Redis (this suite has them)")
    stack.ensure_workshop()
    with stack.admin_client("designer") as client:
        yield client


@pytest.fixture(scope="module")
def shop_b(stack: Stack) -> tuple[str, Visitor]:
    slug = f"bikes-{uuid.uuid4().hex[:6]}"
    tenant_id = stack.add_shop_like_demo(slug, widget_key=f"wk_{uuid.uuid4().hex}")
    visitor = Visitor(stack, tenant=slug, key=stack.issue_rest_key(slug))
    return tenant_id, visitor


def runtime(stack: Stack) -> dict[str, Any]:
    """What the Rasa runtime serves (bot/channel.py GET /webhooks/switchboard/models)."""
    answer = httpx.get(f"{stack.rasa}/webhooks/switchboard/models",
                       headers=stack.rasa_headers(), timeout=10)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def serving(stack: Stack, shop: str) -> str | None:
    served: str | None = runtime(stack)["shops"].get(shop, {}).get("serving")
    return served


def put(designer: httpx.Client, path: str, content: str) -> None:
    answer = designer.put(f"/training/{path}", content=content, headers=YAML)
    assert answer.status_code in (200, 201), answer.text


def wait_for(check: Any, seconds: float, what: str, state: Any = lambda: None) -> Any:
    """`check()`'s answer once it has one; after `seconds`, an error that says `state()`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {seconds} s ({state()})")


@pytest.fixture(scope="module")
def trained(stack: Stack, designer: httpx.Client) -> dict[str, Any]:
    """The demo shop's drafts, checked, then trained into a version (ready, not active) and
    tested against the base model, which the shop serves."""
    # Visitors asked about frame sizes lately: the new version routes them elsewhere.
    for asked in ("what frame size do I need, I'm 185 cm tall",
                  "is a medium frame right for someone 170 cm?"):
        Visitor(stack).say(asked)
    # a broken file: the error names the draft and the line
    put(designer, "nlu/bikes", NLU.replace("    examples: |", "   examples: |", 1))
    broken = designer.post("/training/validate").json()
    assert broken["ok"] is False
    assert any(e["file"] == "nlu/bikes.yml" and e["line"] > 1 for e in broken["errors"]), broken
    # a draft that takes over a base flow is refused, and cannot be trained
    put(designer, "nlu/bikes", NLU)
    put(designer, "domain/bikes", DOMAIN)
    put(designer, "rules/bikes", HIJACK)
    hijack = designer.post("/training/validate").json()
    assert hijack["ok"] is False
    assert any(e["file"] == "rules/bikes.yml" and "check_order_status" in e["message"]
               for e in hijack["errors"]), hijack
    refused = designer.post("/models")
    assert refused.status_code == 422, refused.text
    put(designer, "rules/bikes", RULES)
    put(designer, "tests/bikes", TESTS)
    valid = designer.post("/training/validate").json()
    assert valid == {"ok": True, "errors": [], "warnings": [], "rasa_checked": True}, valid
    started = designer.post("/models")
    assert started.status_code == 202, started.text
    version = started.json()["id"]
    assert started.json()["job"]["id"]
    seen: set[str] = set()
    last: list[dict[str, Any]] = []

    def ready() -> dict[str, Any] | None:
        model: dict[str, Any] = designer.get(f"/models/{version}").json()
        seen.add(model["state"])
        last[:] = [model]
        assert model["state"] != "failed", model
        return model if model["state"] == "ready" else None

    model = wait_for(ready, TRAINING, "the shop's model trained", lambda: last)
    assert seen & {"queued", "training"}, seen  # its progress was visible on the way
    assert model["training_seconds"] > 0 and model["size_bytes"] > 0 and model["fingerprint"]
    assert model["active"] is False
    evaluation = model["evaluation"]
    assert "error" not in evaluation, evaluation
    assert evaluation["against"] is None  # the base model
    heldout = evaluation["heldout"]
    assert heldout["candidate"]["intents"]["ask_frame_size"]["f1"] > 0.5, heldout["candidate"]
    assert "ask_frame_size" not in heldout["against"]["intents"]
    assert heldout["candidate"]["macro_f1"] > 0.8 and heldout["against"]["macro_f1"] > 0.8
    # Every intent here has 12 examples or more: none is left unscored (bot/scoring.py unscored).
    assert heldout["candidate"]["unscored"] == {} == heldout["against"]["unscored"]
    tests = evaluation["tests"]
    # The base's 31 stories and the shop's own, none of them trained on (bot/project.py): the
    # shop's drafts make none of them fail that passed on the base (one of the base's, an
    # exchange asked in the middle of a return, fails on both: the base's NLU data teaches
    # exchanges as returns), and its own passes.
    assert tests["candidate"]["total"] == 32, tests
    assert not [c for c in tests["changed"] if c["after"] == "failed"], tests
    assert {"story": "a rider asks which frame size fits", "file": "tests/bikes.yml",
            "before": "failed", "after": "passed"} in tests["changed"], tests
    routed = evaluation["routing"]
    assert routed["messages"] >= 2, routed
    to_sizes = [c for c in routed["changes"] if c["to"] == "ask_frame_size"]
    assert to_sizes and sum(c["count"] for c in to_sizes) >= 2, routed
    assert any("185 cm" in text for c in to_sizes for text in c["examples"]), routed
    return model


def test_activation_switches_shop_a_with_no_failed_turn(stack: Stack, designer: httpx.Client,
                                                        trained: dict[str, Any]) -> None:
    visitor = Visitor(stack)
    assert "order number" in visitor.say("where is my order?").lower()  # the form asks
    assert ANSWER not in Visitor(stack).say(QUESTION)
    # Other conversations of shop A keep talking while the model switches under them.
    failures: list[str] = []
    replies: list[str] = []
    stop = threading.Event()

    def chatter() -> None:
        while not stop.is_set():
            try:
                replies.append(Visitor(stack).say("do you ship to canada?"))
            except AssertionError as exc:  # Visitor.say asserts a 200
                failures.append(str(exc))
            except httpx.HTTPError as exc:
                failures.append(repr(exc))

    talking = threading.Thread(target=chatter)
    talking.start()
    try:
        activated = designer.post(f"/models/{trained['id']}/activate")
        assert activated.status_code == 200, activated.text
        assert activated.json()["active"] is True
        wait_for(lambda: serving(stack, DEMO_TENANT_ID) == trained["id"], 60,
                 "the runtime serves the new version")
    finally:
        stop.set()
        talking.join(60)
    assert not failures, failures
    assert replies and all(reply.strip() for reply in replies), replies
    # the conversation that was running goes on where it was, now on the new model
    assert "email" in visitor.say("1001").lower()
    assert "1001" in visitor.say("alex@example.com")
    assert ANSWER in visitor.say(QUESTION)
    listed = designer.get("/models").json()["items"]
    assert [m["id"] for m in listed if m["active"]] == [trained["id"]]


def test_the_new_intent_answers_on_rest_and_in_the_widget(stack: Stack,
                                                          trained: dict[str, Any]) -> None:
    assert ANSWER in Visitor(stack).say("what frame size should I get for 6 foot")
    widget = WebVisitor(stack)
    try:
        assert any(ANSWER in reply for reply in widget.say(QUESTION))
    finally:
        widget.close()
    # the base flows are intact on the shop's model
    assert "order number" in Visitor(stack).say("where is my order?").lower()


def test_text_changes_reach_a_shop_on_its_own_model_without_retraining(
        stack: Stack, designer: httpx.Client, trained: dict[str, Any]) -> None:
    """The shop's model says its responses through the NLG endpoint like the base does: the
    base's responses and its own (utter_frame_size, from its domain draft)."""
    changed = designer.put("/responses/utter_ask_order_number", json={
        "variants": [{"text": "Which order number is it, rider?"}]})
    assert changed.status_code == 200, changed.text
    try:
        assert serving(stack, DEMO_TENANT_ID) == trained["id"]
        assert "rider" in Visitor(stack).say("where is my order?")
    finally:
        assert designer.delete("/responses/utter_ask_order_number").status_code == 200
    own = designer.put("/responses/utter_frame_size", json={
        "variants": [{"text": "Frame sizes, rider edition: ask in the Hamburg store."}]})
    assert own.status_code == 200, own.text
    try:
        assert "rider edition" in Visitor(stack).say(QUESTION)
    finally:
        assert designer.delete("/responses/utter_frame_size").status_code == 200
    assert ANSWER in Visitor(stack).say(QUESTION)  # its domain's text again


def test_another_shops_bot_is_unchanged(stack: Stack, shop_b: tuple[str, Visitor],
                                        trained: dict[str, Any]) -> None:
    tenant_id, visitor = shop_b
    assert ANSWER not in visitor.say(QUESTION)
    assert serving(stack, tenant_id) is None


def test_rollback_restores_the_old_behaviour(stack: Stack, designer: httpx.Client,
                                             trained: dict[str, Any]) -> None:
    back = designer.post("/models/base/activate")
    assert back.status_code == 200, back.text
    wait_for(lambda: serving(stack, DEMO_TENANT_ID) is None, 30, "the base serves shop A")
    assert ANSWER not in Visitor(stack).say(QUESTION)
    # and forward again to the trained version (any earlier version activates the same way)
    assert designer.post(f"/models/{trained['id']}/activate").status_code == 200
    wait_for(lambda: serving(stack, DEMO_TENANT_ID) == trained["id"], 60, "shop A's version")
    assert ANSWER in Visitor(stack).say(QUESTION)


def test_models_are_unloaded_under_the_memory_budget_and_reload_on_demand(
        stack: Stack, shop_b: tuple[str, Visitor], trained: dict[str, Any]) -> None:
    """Shop B gets a model too (a copy of A's file as its own version, switched on through
    the workshop as the admin service does): with room for one, each shop's turn unloads the
    other's model and loads its own again, and every turn is answered by the right one."""
    tenant_id, visitor = shop_b
    workshop = stack.ensure_workshop()
    version_b = uuid.uuid4().hex
    models = stack.var_dir / "shop-models"
    (models / tenant_id).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(models / DEMO_TENANT_ID / f"{trained['id']}.tar.gz",
                    models / tenant_id / f"{version_b}.tar.gz")
    switched = httpx.put(f"{workshop}/shops/{tenant_id}/active", json={"version": version_b},
                         headers=stack.rasa_headers(), timeout=10)
    assert switched.status_code == 200, switched.text
    wait_for(lambda: serving(stack, tenant_id) == version_b, 60, "shop B's version")
    for _ in range(2):
        assert ANSWER in visitor.say(QUESTION)
        resident = [m["version"] for m in runtime(stack)["resident"]]
        assert resident == [version_b], resident
        assert ANSWER in Visitor(stack).say(QUESTION)  # shop A: loaded again
        resident = [m["version"] for m in runtime(stack)["resident"]]
        assert resident == [trained["id"]], resident
    described = runtime(stack)
    # A model's cost is the process's growth across its load (at least 1 MB): a reload into
    # memory the unloaded one freed may grow it by less, so only the floor is certain.
    assert described["budget_mb"] == 1 and described["used_mb"] >= 1
    assert described["resident"][0]["cost_mb"] >= 1


def test_a_training_cancelled_stops_its_trainer_and_frees_the_slot(
        stack: Stack, designer: httpx.Client, trained: dict[str, Any]) -> None:
    workshop = stack.procs["workshop"].pid

    def trainers() -> list[str]:
        found = subprocess.run(["pgrep", "-P", str(workshop), "-f", "bot.train_shop"],
                               capture_output=True, text=True).stdout
        return found.split()

    def training(version: str) -> dict[str, Any] | None:
        model: dict[str, Any] = designer.get(f"/models/{version}").json()
        return model if model["state"] == "training" else None  # running in the workshop

    versions = []
    for attempt in range(2):  # the second starts at once in the slot the first one held
        # Changed drafts: the very drafts of a ready version are not trained again (409).
        put(designer, "nlu/bikes", f"{NLU}# cancelled training {attempt + 1}\n")
        started = designer.post("/models")
        assert started.status_code == 202, started.text
        versions.append(started.json()["id"])
        wait_for(lambda: training(versions[-1]), 60, "running in the workshop")
        wait_for(trainers, 30, "the trainer process started")
        cancelled = designer.post(f"/models/{versions[-1]}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "cancelled"
        wait_for(lambda: not trainers(), 10, "the trainer process ended", trainers)
        job = designer.get(f"/jobs/{started.json()['job']['id']}").json()
        assert job["status"] == "cancelled", job
    put(designer, "nlu/bikes", NLU)
    for version in versions:
        assert designer.delete(f"/models/{version}").status_code == 204
    listed = {m["id"] for m in designer.get("/models").json()["items"]}
    assert trained["id"] in listed and not listed & set(versions)
