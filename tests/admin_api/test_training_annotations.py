"""The annotations of an NLU example ([text](entity), [text](entity:value), [text]{json}) as
admin_api/training/nodes.py scans them: the same as the regular expressions that found them
before, on examples made of the characters that matter, and in time linear in the example (the
expressions took 27 s for a line of 100 000 `[`)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from admin_api.training.nodes import ANNOTATED, ANNOTATION, JSON_ANNOTATION
from admin_api.training.reader import parse

# The expressions as they were (quadratic), the reference for what is found.
BEFORE_ANNOTATION = re.compile(r"\[[^\]\n]*\]\(([^)\n:]+)(?::[^)\n]*)?\)")
BEFORE_JSON_ANNOTATION = re.compile(r"\]\{[^}\n]*\"entity\"\s*:\s*\"([^\"\n]+)\"")
BEFORE_ANNOTATED = re.compile(r"\[([^\]\n]*)\](?:\(([^)\n:]+)(?::([^)\n]*))?\)|(\{[^}\n]*\}))")

PIECES = ["[", "]", "(", ")", "{", "}", ":", '"', "\n", " ", "a", "e", '"entity"', "]{",
          '"entity": "size"', '"entity": "colour"', "[M](size)", "[M](size:medium)",
          '[M]{"entity": "size"}']
examples = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


def same_as_before(example: str) -> None:
    assert ANNOTATION.findall(example) == BEFORE_ANNOTATION.findall(example)
    assert JSON_ANNOTATION.findall(example) == BEFORE_JSON_ANNOTATION.findall(example)
    assert [(m.span(), m.groups(default="")) for m in BEFORE_ANNOTATED.finditer(example)] == \
        [((m.start(), m.end()), m.groups(default="")) for m in ANNOTATED.finditer(example)]


@settings(max_examples=1000, deadline=None)
@given(examples)
def test_the_scan_finds_what_the_expressions_found(example: str) -> None:
    same_as_before(example)


@pytest.mark.parametrize("example", [
    "is [six foot](size) too tall for [the M frame](frame:M)?",
    'is [six foot]{"entity": "size", "value": "182"} too tall',
    "[a [b](e)",  # the text runs from the first `[`: "a [b"
    '[a]{ [b](e) }',  # an annotation inside braces: one for ANNOTATION, none for ANNOTATED
    '[a]{"entity": "x", "entity": "y"} [b](c:) [d]()',
    '[x]{"entity"\n: "y"} ]{"entity": "z"}}',  # a name after the braces' end, over a newline
    '"entity"entity": "n"]{"entity"entity": "m"',  # keys that share a quote
])
def test_what_designers_write_and_its_corners(example: str) -> None:
    same_as_before(example)
    assert ANNOTATION.findall("is [six foot](size) too tall for [the M frame](frame:M)?") == \
        ["size", "frame"]


# Lines that made the expressions quadratic, 100 000 characters each (a draft may have 512 KB).
PIECES_REPEATED = {
    "brackets": "[",
    "texts without entity": "[a](",
    "texts without value": "[a](e:",
    "texts without JSON": "[a]{",
    "braces without key": "]{",
    "keys without name": ']{"entity": ',
}
LONG = {name: piece * (100_000 // len(piece)) for name, piece in PIECES_REPEATED.items()}
LONG["a key, then braces"] = ']{"entity": "size"' + "]{" * 50_000


@pytest.mark.parametrize("example", list(LONG.values()), ids=list(LONG))
def test_a_long_line_is_scanned_at_once(example: str) -> None:
    """The bound is generous (each takes a tenth of a second; the expressions took minutes):
    only a guard against the quadratic time coming back, not a benchmark."""
    started = time.perf_counter()
    ANNOTATION.findall(example)
    JSON_ANNOTATION.findall(example)
    list(ANNOTATED.finditer(example))
    assert time.perf_counter() - started < 2


def test_a_draft_with_a_line_of_brackets_is_read_at_once() -> None:
    text = ('version: "3.1"\nnlu:\n  - intent: ask_size\n    examples: |\n'
            "      - which [frame size](size) for me\n      - " + "[" * 100_000 + "\n")
    started = time.perf_counter()
    parsed = parse("nlu/sizes.yml", "nlu", text)
    assert time.perf_counter() - started < 2  # a guard, as above; 27 s before
    assert parsed.problems == []
    assert [(a.entity, a.text, a.example) for a in parsed.defs.annotated] == \
        [("size", "frame size", "which frame size for me")]


# The two other readers of annotations (admin_api/training/gaps.py, bot/draft_places.py) keep
# an expression, bounded to stay linear: the same keys and texts for what designers write.
HOSTILE = ["[" * 100_000, "[" * 100_000 + "](e)", "[a](" * 30_000, "[a]{" * 30_000,
           "[a](" + "x" * 100_000, '[a]{"entity": "' + "x" * 100_000]


def test_a_gaps_key_reads_annotations_as_their_text_in_linear_time() -> None:
    from admin_api.training.gaps import example_key

    assert example_key("Is the [denim jacket](product) in [M]{\"entity\": \"size\"}?") == \
        example_key("is the denim jacket in m")
    assert example_key("[a [b](e) c") == example_key("[a b c")  # a bracket before: kept
    started = time.perf_counter()
    for line in HOSTILE:
        example_key(line)
    assert time.perf_counter() - started < 5  # a guard against the quadratic scan (minutes)


def test_the_workshops_places_read_hostile_examples_in_linear_time() -> None:
    from bot.draft_places import ANNOTATION as PLACES_ANNOTATION

    assert PLACES_ANNOTATION.sub(r"\1", "my [size](size:m) is [M]{\"entity\": \"size\"}") == \
        "my size is M"
    started = time.perf_counter()
    for line in HOSTILE:
        PLACES_ANNOTATION.sub(r"\1", line)
    assert time.perf_counter() - started < 5  # a guard, as above
