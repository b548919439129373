"""bot/rasa_checks.py: where Rasa's own messages land, for the messages as Rasa words them
(rasa/validator.py, rasa/shared/core/training_data/story_reader/yaml_story_reader.py) over
drafts read by bot/draft_places.py. The real workshop runs them end to end in
tests/bot/test_workshop.py and tests/admin_api/test_training_validate.py; these are the cases
no quick draft set makes Rasa say."""

from __future__ import annotations

import functools

from bot.draft_places import places
from bot.rasa_checks import Finding, _attribute, _Raw

RULES = """version: "3.1"
rules:
  - rule: greet with the size guide
    steps:
      - intent: greet
      - action: utter_size_guide
"""
DOMAIN = """version: "3.1"
intents:
  - ask_size
responses:
  utter_size_guide:
    - text: "S, M and L."
"""
DRAFTS = {"rules/smalltalk.yml": RULES, "domain/sizes.yml": DOMAIN}


def attributed(message: str) -> Finding:
    return _attribute(_Raw(message), message, DRAFTS, {},
                      functools.cache(lambda: places(DRAFTS)))


def test_a_message_about_a_base_file_is_not_put_on_the_draft_of_the_same_name() -> None:
    message = ("Issue found in 'data/rules/smalltalk.yml': Found an unexpected key "
               "'utter_x' under step 2 of rule 'thanks'.")
    assert attributed(message).file != "rules/smalltalk.yml"
    about_draft = message.replace("data/rules/smalltalk.yml", "rules/smalltalk.yml")
    assert attributed(about_draft).file == "rules/smalltalk.yml"


def test_a_message_that_names_nothing_of_the_drafts_gets_no_place() -> None:
    """Rather than the first draft's line 1 (where it used to go)."""
    finding = attributed("Rasa could not load the data: 'NoneType' object is not iterable")
    assert (finding.file, finding.line) == ("", 0)


def test_a_form_used_in_a_rule_is_found_in_that_rule() -> None:
    finding = attributed("The form 'utter_size_guide' is used in the 'greet with the size "
                         "guide' block, but it is not listed in the domain file.")
    assert (finding.file, finding.line) == ("rules/smalltalk.yml", 6)
