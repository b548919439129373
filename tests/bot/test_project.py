"""Test stories are held out of training (bot/project.py): what a model learns from (the base's
data/nlu and data/rules, a shop's NLU, rules and stories drafts) never includes a test story,
the base's (data/tests) or a shop's (`tests` drafts), while the evaluation still runs them all.
A test story that is trained on passes by construction: its `user:` texts become examples of
the intent it expects (a designer's nonsense sentence in a test was learned as that intent).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from bot.project import base_training_paths, conversation_tests, lay_out, training_paths
from tests.bot.in_rasa import ROOT, run_in_rasa

ODD = "purple zebra umbrella on tuesday"
TEST_DRAFT = f"""version: "3.1"
stories:
  - story: a test with an odd phrasing
    steps:
      - user: |
          {ODD}
        intent: greet
      - action: utter_greet
"""
NLU_DRAFT = """version: "3.1"
nlu:
  - intent: greet
    examples: |
      - ahoy there
"""
DRAFTS = {"tests/odd.yml": TEST_DRAFT, "nlu/more.yml": NLU_DRAFT}


def makefile_training_data() -> list[str]:
    for line in (ROOT / "Makefile").read_text().replace("\\\n", " ").splitlines():
        words = shlex.split(line.strip()) if line.strip().startswith("$(RASA) train") else []
        if words:
            data = words[words.index("--data") + 1:]
            return list(data[:next((i for i, w in enumerate(data) if w.startswith("-")),
                                   len(data))])
    raise AssertionError("Makefile: no `$(RASA) train` line")


def test_the_base_model_trains_on_what_shop_models_train_on_and_never_on_tests() -> None:
    trained = makefile_training_data()
    assert trained == [Path(p).relative_to(ROOT).as_posix() for p in base_training_paths(ROOT)]
    assert all(not path.startswith("data/tests") and path != "data" for path in trained)


def test_a_shops_test_drafts_are_laid_out_outside_what_trains(tmp_path: Path) -> None:
    paths = lay_out(tmp_path, DRAFTS, ROOT)
    test_file = next(Path(p) for p, name in paths.items() if name == "tests/odd.yml")
    assert test_file.read_text() == TEST_DRAFT
    for folder in map(Path, training_paths(tmp_path, ROOT)):
        assert folder not in test_file.parents
        assert not list(folder.rglob("test_*.yml")), folder
    # ...and the evaluation runs the base's tests and the shop's own
    tests = conversation_tests(tmp_path, DRAFTS, ROOT)
    assert (test_file, "tests/odd.yml") in tests
    assert {name for _, name in tests} >= {"data/tests/test_returns.yml",
                                           "data/tests/test_order_status.yml"}


LEARNED = r"""
import json, sys, tempfile
from pathlib import Path
from bot.project import domain_path, lay_out, training_paths
from rasa.shared.importers.importer import TrainingDataImporter

drafts = json.loads(sys.stdin.read())
tmp = Path(tempfile.mkdtemp()).resolve()
lay_out(tmp, drafts)
importer = TrainingDataImporter.load_from_config(
    config_path="config.yml", domain_path=str(domain_path(tmp)),
    training_data_paths=training_paths(tmp))
def texts(data):
    return sorted({m.get("text").strip() for m in data.training_examples if m.get("text")})

base = TrainingDataImporter.load_from_dict(training_data_paths=["data/nlu"]).get_nlu_data()
tests = TrainingDataImporter.load_from_dict(training_data_paths=["data/tests"]).get_stories()
test_texts = sorted({event.text.strip() for step in tests.story_steps for event in step.events
                     if getattr(event, "text", None)})
stories = [step.block_name for step in importer.get_stories().story_steps]
print(json.dumps({"examples": texts(importer.get_nlu_data()), "base": texts(base),
                  "base_tests": test_texts, "stories": stories}))
"""


def test_what_training_reads_holds_no_test_story() -> None:
    """Rasa's own importer, as training and Rasa's checks load the project: the test draft's
    sentence and the base's test stories are not there; the NLU draft's example is."""
    learned: dict[str, Any] = run_in_rasa(LEARNED, json.dumps(DRAFTS), timeout=300)
    examples, base = set(learned["examples"]), set(learned["base"])
    assert examples - base == {"ahoy there"}  # data/nlu's examples and the draft's, no more
    assert ODD not in examples
    only_in_tests = set(learned["base_tests"]) - base
    assert only_in_tests  # data/tests has sentences of its own, and none of them is learned
    assert not only_in_tests & examples
    assert "a test with an odd phrasing" not in learned["stories"]
    assert learned["stories"]  # the rules are read
