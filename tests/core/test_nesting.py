"""JSON from outside is read with a bound on its nesting: past it, or past what the parser
itself can go, it is a ValueError like any other unreadable JSON, never a RecursionError."""

from __future__ import annotations

import json

import pytest

from core.nesting import MAX_DEPTH, TooDeep, depth, loads


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_what_we_read_parses_as_json_does() -> None:
    event = {"object": "event", "data": {"object": {"lines": {"data": [{"price": {"id": 1}}]}}}}
    assert loads(json.dumps(event)) == event
    assert loads(b'"text"') == "text" and depth("text") == 0 and depth([]) == 1
    assert loads(nested(MAX_DEPTH)) is not None


@pytest.mark.parametrize("raw", [nested(MAX_DEPTH + 1), nested(900), nested(100_000),
                                 '{"a":' * 100_000 + "1" + "}" * 100_000],
                         ids=["just past", "parseable", "past the parser", "objects"])
def test_deeper_json_is_a_value_error(raw: str) -> None:
    with pytest.raises(TooDeep) as raised:
        loads(raw)
    assert isinstance(raised.value, ValueError) and str(MAX_DEPTH) in str(raised.value)


def test_depth_is_measured_without_recursion() -> None:
    value: list[object] = []
    for _ in range(50_000):
        value = [value, {"k": "v"}]
    assert depth(value) == 50_001


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe", b""])
def test_other_unreadable_input_raises_what_json_raises(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads(raw)
