"""Adding to a designer's draft as text: NLU examples under an intent, an intent to a domain.

A draft is stored as its designer wrote it, comments and layout included (drafts.py), so gap
mining (gaps.py) adds lines where they belong instead of loading and dumping the YAML (a dump
drops every comment and rewrites the layout): new examples go at the end of the intent's
`examples: |` block when the draft has one, else a new `- intent:` item goes at the end of the
`nlu:` list with the list's own indentation; an intent goes at the end of the `intents:` list.
Where the text is not a shape this can add to safely (flow style, a key missing its list, a
document marker), `CannotAppend` says so. Every result is read back: the data must be exactly
the old data plus the additions, else `CannotAppend` (nothing is stored then).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from admin_api.training.nodes import LOADER, VERSION

HEADER = f'version: "{VERSION}"\n'


class CannotAppend(ValueError):
    """The draft's text is not a shape examples can be added to without rewriting it."""


def add_examples(text: str | None, intent: str, examples: Sequence[str]) -> str:
    """`text` (an NLU draft, None: none yet) with `examples` added under `intent`."""
    if not examples:
        return text or ""
    if text is None or not text.strip():
        return (text or "") + HEADER + "nlu:\n" + _item(0, intent, examples)
    root = _root(text)
    lines = text.splitlines(keepends=True)
    if root is None:  # comments only
        new = _ended(text) + HEADER + "nlu:\n" + _item(0, intent, examples)
    else:
        found = _key(root, "nlu")
        if found is None:
            new = _ended(text) + "nlu:\n" + _item(0, intent, examples)
        else:
            index, value = found
            new = _into_nlu(lines, root, index, value, intent, examples)
    _check(text, new, lambda data: _with_examples(data, intent, examples))
    return new


def add_intent(text: str | None, intent: str) -> str:
    """`text` (a domain draft, None: none yet) with `intent` listed under intents."""
    if text is None or not text.strip():
        return (text or "") + HEADER + f"intents:\n- {intent}\n"
    root = _root(text)
    lines = text.splitlines(keepends=True)
    if root is None:
        new = _ended(text) + HEADER + f"intents:\n- {intent}\n"
    else:
        found = _key(root, "intents")
        if found is None:
            new = _ended(text) + f"intents:\n- {intent}\n"
        else:
            index, value = found
            if not isinstance(value, SequenceNode) or value.flow_style or not value.value:
                raise CannotAppend("its intents are not a block list (- name per line)")
            at = _end_of_value(lines, root, index)
            new = _insert(lines, at, f"{' ' * value.start_mark.column}- {intent}\n")
    _check(text, new, lambda data: _with_intent(data, intent))
    return new


# --- where to write ----------------------------------------------------------------------

def _root(text: str) -> MappingNode | None:
    try:
        root = yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        raise CannotAppend(f"it is not valid YAML ({exc.__class__.__name__})") from None
    if root is None:
        return None
    if not isinstance(root, MappingNode) or root.flow_style or root.start_mark.column != 0 \
            or text.lstrip().startswith(("---", "%")):
        raise CannotAppend("its top level is not a plain block mapping")
    return root


def _key(root: MappingNode, name: str) -> tuple[int, Node] | None:
    for index, (key, value) in enumerate(root.value):
        if isinstance(key, ScalarNode) and key.value == name:
            return index, value
    return None


def _into_nlu(lines: list[str], root: MappingNode, index: int, value: Node, intent: str,
              examples: Sequence[str]) -> str:
    if isinstance(value, SequenceNode) and not value.flow_style and value.value:
        block = _examples_block(lines, value, intent)
        if block is not None:
            at, indent = block
            return _insert(lines, at, "".join(f"{indent}- {e}\n" for e in examples))
        at = _end_of_value(lines, root, index)
        return _insert(lines, at, _item(value.start_mark.column, intent, examples))
    if isinstance(value, ScalarNode) and value.tag.endswith(":null") \
            and value.start_mark.index == value.end_mark.index:  # "nlu:" with nothing after
        return _insert(lines, root.value[index][0].start_mark.line + 1,
                       _item(0, intent, examples))
    raise CannotAppend("its nlu is not a block list (- intent: ... per item)")


def _examples_block(lines: list[str], items: SequenceNode,
                    intent: str) -> tuple[int, str] | None:
    """(the line after the last example, its indentation) of the intent's `examples: |`."""
    for item in reversed(items.value):
        if not isinstance(item, MappingNode):
            continue
        pairs = {k.value: v for k, v in item.value if isinstance(k, ScalarNode)}
        name, block = pairs.get("intent"), pairs.get("examples")
        if not (isinstance(name, ScalarNode) and name.value == intent
                and isinstance(block, ScalarNode) and block.style == "|"):
            continue
        content = block.value.split("\n")
        filled = [i for i, line in enumerate(content) if line.strip()]
        if not filled:
            return None
        at = block.start_mark.line + 1 + filled[-1]  # the block starts on the next line
        if at >= len(lines) or lines[at].strip() != content[filled[-1]].strip():
            return None  # an indentation indicator or the like: add a new item instead
        line = lines[at]
        return at + 1, line[:len(line) - len(line.lstrip())]
    return None


def _end_of_value(lines: list[str], root: MappingNode, index: int) -> int:
    """The line where the value of the root's `index`th key ends: before the next key (and
    the comments and blank lines right above it), or the end of the file."""
    if index + 1 >= len(root.value):
        return len(lines)
    at = root.value[index + 1][0].start_mark.line
    while at > 0 and (not lines[at - 1].strip() or lines[at - 1].startswith("#")):
        at -= 1
    return at


def _insert(lines: list[str], at: int, added: str) -> str:
    before = "".join(lines[:at])
    return _ended(before) + added + "".join(lines[at:])


def _ended(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def _item(indent: int, intent: str, examples: Sequence[str]) -> str:
    pad = " " * indent
    return (f"{pad}- intent: {intent}\n{pad}  examples: |\n"
            + "".join(f"{pad}    - {e}\n" for e in examples))


# --- reading back --------------------------------------------------------------------------

def _check(old: str, new: str, expected: Any) -> None:
    try:
        before = yaml.load(old, Loader=LOADER) if old.strip() else None
        after = yaml.load(new, Loader=LOADER)
    except yaml.YAMLError:
        raise CannotAppend("adding to it would break its YAML") from None
    # No data before: the addition starts the file with its version.
    if _normal(after) != _normal(expected(before if isinstance(before, dict)
                                          else {"version": VERSION})):
        raise CannotAppend("adding to it would change more than the additions")


def _with_examples(data: dict[str, Any], intent: str, examples: Sequence[str]) -> dict[str, Any]:
    return {**data, "nlu": [
        *(data.get("nlu") or []), {"intent": intent, "examples": "".join(
            f"- {e}\n" for e in examples)}]}


def _with_intent(data: dict[str, Any], intent: str) -> dict[str, Any]:
    return {**data, "intents": [*(data.get("intents") or []), intent]}


def _normal(data: Any) -> Any:
    """What must match: the data, with each intent's examples as a multiset of lines over
    all its items (the same examples in one item or two train the same) and the intents'
    order ignored."""
    if not isinstance(data, dict):
        return data
    normal = dict(data)
    if isinstance(data.get("nlu"), list):
        others: list[Any] = []
        examples: dict[str, Counter[str]] = {}
        for item in data["nlu"]:
            if isinstance(item, dict) and set(item) == {"intent", "examples"} \
                    and isinstance(item["examples"], str):
                lines = [ln.strip() for ln in item["examples"].splitlines() if ln.strip()]
                examples.setdefault(str(item["intent"]), Counter()).update(lines)
            else:
                others.append(item)
        normal["nlu"] = (others, examples)
    if isinstance(data.get("intents"), list):
        normal["intents"] = sorted(map(repr, data["intents"]))
    return normal
