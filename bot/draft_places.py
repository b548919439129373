"""Where a shop's drafts define and use each name: the places Rasa's messages about the drafts
are put on (bot/rasa_checks.py).

Rasa's checks name things, not places ("The intent 'ask_beta' is not used in any story or
rule."), and what a message is about decides where it belongs: that intent is a definition
without use, so its place is where a domain draft lists it, not a test story that happens to
mention it. So each draft is read once (PyYAML's composer, whose marks give lines) into:

- definitions: intents, entities, slots, forms, actions and responses of domain drafts; the
  intents NLU drafts give examples (`nlu_intent`); the rules and stories of rules and stories
  drafts, by name;
- uses: the intents, actions, forms (active_loop) and slots steps name, each with the rule or
  story it is in; the slots a form requires, with the form;
- examples: each NLU example's text as Rasa reads it (annotations reduced to their text).

Test drafts are left out: Rasa's checks do not read them (they are not training data), so no
message of theirs is about one. A draft that does not parse adds nothing (Rasa's schema check
reports it with its line before anything else runs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DOMAIN_SECTIONS = {"intents": "intent", "entities": "entity", "slots": "slot",
                   "forms": "form", "actions": "action", "responses": "response"}
# [text](entity), [text](entity:value), [text]{"entity": ...}: Rasa keeps the text.
# Linear in the line's length: a text holds no `[` (each `[` then scans only to the next
# bracket) and an entity or JSON part is bounded, since "[[[[..." or "[a](" * 30,000 made
# the unbounded pattern quadratic (minutes of the workshop's validation for one line of a
# draft); no annotation a designer writes is that long. admin_api/training/gaps.py alike.
ANNOTATION = re.compile(r"\[([^\[\]\n]*)\](?:\([^)\n]{0,300}\)|\{[^}\n]{0,300}\})")


@dataclass(frozen=True)
class Place:
    file: str  # "domain/beta.yml"
    line: int  # 1-based
    block: str = ""  # the rule, story or form it is in, for a use


@dataclass
class Places:
    defined: dict[tuple[str, str], list[Place]] = field(default_factory=dict)
    used: dict[tuple[str, str], list[Place]] = field(default_factory=dict)
    examples: dict[str, list[Place]] = field(default_factory=dict)

    def definition(self, kinds: Iterable[str], name: str) -> Place | None:
        for kind in kinds:
            found = self.defined.get((kind, name))
            if found:
                return found[0]
        return None

    def use(self, kinds: Iterable[str], name: str, block: str | None = None) -> Place | None:
        for kind in kinds:
            for place in self.used.get((kind, name), ()):
                if block is None or place.block == block:
                    return place
        return None


def places(drafts: Mapping[str, str]) -> Places:
    found = Places()
    for file in sorted(drafts):
        kind = file.split("/", 1)[0]
        if kind == "tests":
            continue
        try:
            root = yaml.compose(drafts[file], Loader=LOADER)  # noqa: S506 (safe composer)
        except yaml.YAMLError:
            continue
        if isinstance(root, MappingNode):
            _Reader(file, found).read(kind, root)
    return found


def _text(node: Node | None) -> str | None:
    return str(node.value) if isinstance(node, ScalarNode) else None


def _pairs(node: Node | None) -> list[tuple[str, Node, Node]]:
    if not isinstance(node, MappingNode):
        return []
    return [(str(key.value), key, value) for key, value in node.value
            if isinstance(key, ScalarNode)]


def _items(node: Node | None) -> list[Node]:
    return list(node.value) if isinstance(node, SequenceNode) else []


class _Reader:
    def __init__(self, file: str, into: Places) -> None:
        self.file, self.into = file, into

    def place(self, node: Node, block: str = "") -> Place:
        return Place(self.file, int(node.start_mark.line) + 1, block)

    def define(self, kind: str, name: str | None, node: Node) -> None:
        if name:
            self.into.defined.setdefault((kind, name), []).append(self.place(node))

    def use(self, kind: str, name: str | None, node: Node, block: str) -> None:
        if name:
            self.into.used.setdefault((kind, name), []).append(self.place(node, block))

    def read(self, kind: str, root: MappingNode) -> None:
        for key, _, value in _pairs(root):
            if kind == "domain" and key in DOMAIN_SECTIONS:
                self._section(DOMAIN_SECTIONS[key], value)
            elif kind == "nlu" and key == "nlu":
                self._nlu(value)
            elif kind in ("rules", "stories") and key in ("rules", "stories"):
                for item in _items(value):
                    self._flow(item)

    def _section(self, what: str, node: Node) -> None:
        if isinstance(node, MappingNode):  # slots, forms, responses: name -> spec
            for name, key_node, spec in _pairs(node):
                self.define(what, name, key_node)
                if what == "form":
                    for field_name, _, value in _pairs(spec):
                        if field_name == "required_slots":
                            for slot in _items(value):
                                self.use("slot", _text(slot), slot, name)
            return
        for entry in _items(node):  # intents, entities, actions: names or name: {...}
            if isinstance(entry, MappingNode):
                for name, key_node, _ in _pairs(entry):
                    self.define(what, name, key_node)
            else:
                self.define(what, _text(entry), entry)

    def _nlu(self, node: Node) -> None:
        for item in _items(node):
            fields = {key: (key_node, value) for key, key_node, value in _pairs(item)}
            for head in ("intent", "synonym", "regex", "lookup"):
                if head in fields:
                    self.define("nlu_intent" if head == "intent" else head,
                                _text(fields[head][1]), fields[head][1])
            examples = fields.get("examples", (None, None))[1]
            if isinstance(examples, ScalarNode):
                first = int(examples.start_mark.line) + 1 + (1 if examples.style == "|" else 0)
                for offset, line in enumerate(str(examples.value).split("\n")):
                    example = line.strip()
                    if example.startswith("- "):
                        text = ANNOTATION.sub(r"\1", example[2:].strip())
                        self.into.examples.setdefault(text, []).append(
                            Place(self.file, first + offset))

    def _flow(self, item: Node) -> None:
        fields = {key: (key_node, value) for key, key_node, value in _pairs(item)}
        block = ""
        for noun in ("rule", "story"):
            if noun in fields:
                block = _text(fields[noun][1]) or ""
                self.define(noun, block, fields[noun][1])
        for section in ("condition", "steps"):
            if section in fields:
                for step in _items(fields[section][1]):
                    self._step(step, block)

    def _step(self, step: Node, block: str) -> None:
        for key, _, value in _pairs(step):
            if key == "intent":
                self.use("intent", _text(value), value, block)
            elif key == "action":
                self.use("action", _text(value), value, block)
            elif key == "active_loop":
                self.use("form", _text(value), value, block)
            elif key == "slot_was_set":
                for entry in _items(value):
                    if isinstance(entry, MappingNode):
                        for slot, slot_node, _ in _pairs(entry):
                            self.use("slot", slot, slot_node, block)
                    else:
                        self.use("slot", _text(entry), entry, block)
            elif key == "or":
                for alternative in _items(value):
                    self._step(alternative, block)
