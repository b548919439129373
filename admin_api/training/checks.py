"""Our checks of a shop's drafts, layered over the base: what `POST /training/validate` and
each `PUT /training/{kind}/{name}` report, as problems with file, line and a sentence.

Rasa's own checks (`rasa data validate`: story structure, contradicting rules, the domain's
consistency as Rasa reads it) are NOT run yet: they need Rasa's interpreter, which runs on the
bot side (issue 15's next slice). `validate` is the seam: it merges `our_problems` with
`rasa_problems`, which finds nothing until that runner exists.

What is checked, per draft (`<kind>/<name>.yml`, lines 1-based from PyYAML's node marks):

- YAML syntax; the top-level keys each kind allows; `version: "3.1"`.
- Shapes: NLU items are an intent, synonym, regex or lookup with `examples: |` (a block of
  "- " lines); rules and stories have names and steps; slots a type and mappings; forms
  their required slots; responses are `utter_*` with text, buttons, etc.
- The base stays intact. Drafts only add: intents, examples (also to base intents),
  entities, slots, responses, rules, stories, forms. A draft may not redefine a slot, form,
  action or response of the base, reuse the name of a base rule or story, set
  session_config, or start a rule or story with a base intent and go on differently from the
  base's rule for it. Steps may use only what exists: intents, slots, entities and forms of
  the base or the drafts, `utter_` responses, and the base's actions (custom actions are
  code, which a draft cannot add).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

VERSION = "3.1"
TOP_KEYS: dict[str, tuple[str, ...]] = {
    "nlu": ("version", "nlu"),
    "rules": ("version", "rules"),
    "stories": ("version", "stories"),
    "tests": ("version", "stories"),
    "domain": ("version", "intents", "entities", "slots", "responses", "actions", "forms"),
}
# What Rasa 3.6 defines in every domain (rasa/shared/core/constants.py).
DEFAULT_INTENTS = frozenset({"restart", "back", "out_of_scope", "session_start",
                             "nlu_fallback"})
DEFAULT_ACTIONS = frozenset({
    "action_listen", "action_restart", "action_session_start", "action_default_fallback",
    "action_deactivate_loop", "action_revert_fallback_events",
    "action_default_ask_affirmation", "action_default_ask_rephrase",
    "action_two_stage_fallback", "action_unlikely_intent", "action_back", "action_send_text",
    "action_extract_slots"})
DEFAULT_SLOTS = frozenset({"requested_slot", "session_started_metadata"})
SLOT_TYPES = ("text", "bool", "categorical", "float", "list", "any")
MAPPING_TYPES = ("from_entity", "from_text", "from_intent", "from_trigger_intent", "custom")
VARIANT_KEYS = frozenset({"text", "image", "custom", "buttons", "attachment", "quick_replies",
                          "elements", "channel", "condition", "metadata", "id"})
VARIANT_CONTENT = ("text", "image", "custom", "buttons", "attachment", "quick_replies",
                   "elements")
STEP_KEYS = frozenset({"intent", "user", "entities", "action", "bot", "active_loop",
                       "slot_was_set", "checkpoint", "or", "metadata"})
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# An annotated entity in an example: [text](entity), [text](entity:value), [text]{"entity":..}
_ANNOTATION = re.compile(r"\[[^\]\n]*\]\(([^)\n:]+)(?::[^)\n]*)?\)")
_JSON_ANNOTATION = re.compile(r"\]\{[^}\n]*\"entity\"\s*:\s*\"([^\"\n]+)\"")
_TAG_STR = "tag:yaml.org,2002:str"
_TAG_NULL = "tag:yaml.org,2002:null"
# compose() on libyaml when it is there: a 512 KB draft in milliseconds instead of a second.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_NODES = 200_000


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Ref:
    """A name a file uses, to look up once every file is read."""

    what: str  # intent | nlu_intent | action | slot | form | entity
    name: str
    where: Where


@dataclass
class Definitions:
    """What a set of files defines, each name with where (the first place) it is."""

    intents: dict[str, Where] = field(default_factory=dict)
    intents_with_properties: dict[str, Where] = field(default_factory=dict)
    entities: dict[str, Where] = field(default_factory=dict)
    slots: dict[str, Where] = field(default_factory=dict)
    forms: dict[str, Where] = field(default_factory=dict)
    form_slots: dict[str, list[str]] = field(default_factory=dict)  # form -> required slots
    actions: dict[str, Where] = field(default_factory=dict)
    responses: dict[str, Where] = field(default_factory=dict)
    examples: dict[str, Where] = field(default_factory=dict)  # intents with NLU examples
    rules: dict[str, Where] = field(default_factory=dict)
    stories: dict[str, Where] = field(default_factory=dict)
    tests: dict[str, Where] = field(default_factory=dict)
    # A rule or story without condition that starts with an intent (and these entities):
    # (intent, entities) -> (its name, where, the action that follows).
    starts: dict[tuple[str, frozenset[str]], tuple[str, Where, str]] = field(
        default_factory=dict)
    refs: list[Ref] = field(default_factory=list)

    def merge(self, other: Definitions) -> None:
        for name in ("intents", "intents_with_properties", "entities", "slots", "forms",
                     "form_slots", "actions", "responses", "examples", "rules", "stories",
                     "tests", "starts"):
            mine = getattr(self, name)
            for key, value in getattr(other, name).items():
                mine.setdefault(key, value)
        self.refs.extend(other.refs)

    def forms_asking_for(self, slot: str) -> list[str]:
        return sorted(form for form, slots in self.form_slots.items() if slot in slots)


@dataclass
class ParsedFile:
    file: str  # "nlu/sizes.yml" for a draft, "data/nlu/orders.yml" for the base
    kind: str
    defs: Definitions
    problems: list[Problem]


# --- reading one file -----------------------------------------------------------------------

def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _text(node: Node | None) -> str | None:
    """A scalar's text (a string, number or word as written); None for anything else."""
    if isinstance(node, ScalarNode) and node.tag != _TAG_NULL:
        return str(node.value)
    return None


def _is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _TAG_NULL)


def _nodes(root: Node) -> Iterator[Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


class _Reader:
    def __init__(self, file: str, kind: str, base: bool = False) -> None:
        self.file, self.kind, self.base = file, kind, base
        self.defs = Definitions()
        self.problems: list[Problem] = []

    def at(self, node: Node | int) -> Where:
        return Where(self.file, node if isinstance(node, int) else _line(node))

    def problem(self, node: Node | int, message: str) -> None:
        self.problems.append(Problem(self.file, self.at(node).line, message))

    def ref(self, what: str, name: str, node: Node) -> None:
        self.defs.refs.append(Ref(what, name, self.at(node)))

    def define(self, table: dict[str, Where], what: str, name: str, node: Node) -> None:
        if name in table:
            self.problem(node, f"{what} '{name}' is defined twice in this file (first at line "
                               f"{table[name].line})")
        else:
            table[name] = self.at(node)

    def mapping(self, node: Node, what: str) -> list[tuple[str, Node, Node]]:
        """(key, key node, value node) of a mapping; a problem when it is none or a key
        repeats (Rasa's YAML reader refuses repeated keys)."""
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping (key: value lines)")
            return []
        seen: dict[str, int] = {}
        pairs = []
        for key_node, value_node in node.value:
            key = _text(key_node)
            if key is None:
                self.problem(key_node, f"{what}: every key must be a plain name")
                continue
            if key in seen:
                self.problem(key_node, f"'{key}' appears twice (first at line {seen[key]})")
                continue
            seen[key] = _line(key_node)
            pairs.append((key, key_node, value_node))
        return pairs

    def sequence(self, node: Node, what: str) -> list[Node]:
        if _is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.problem(node, f"{what} must be a list (lines starting with '- ')")
            return []
        return list(node.value)

    def name(self, node: Node, what: str) -> str | None:
        text = _text(node)
        if text is None or not text.strip():
            self.problem(node, f"{what} must be a name")
            return None
        return text

    # --- the file ---

    def read(self, text: str) -> None:
        try:
            root = yaml.compose(text, Loader=_LOADER)  # noqa: S506 (safe loader's composer)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = int(mark.line) + 1 if mark is not None else 1
            self.problem(line, f"YAML syntax error: {exc.problem or exc.context or exc}")
            return
        except yaml.YAMLError as exc:
            self.problem(1, f"YAML error: {exc}")
            return
        if root is None:
            self.problem(1, f'the file is empty; start it with version: "{VERSION}"')
            return
        seen: set[int] = set()
        for count, node in enumerate(_nodes(root)):
            if id(node) in seen:
                self.problem(node, "YAML aliases (*name) are not supported: write the content "
                                   "out where it is used")
                return
            seen.add(id(node))
            if count > _MAX_NODES:
                self.problem(1, "the file has too many items to check")
                return
        pairs = self.mapping(root, "the file")
        allowed = TOP_KEYS[self.kind]
        keys = {key: (key_node, value) for key, key_node, value in pairs}
        for key, key_node, _ in pairs:
            if key == "session_config" and self.base and self.kind == "domain":
                continue
            if key == "session_config":
                self.problem(key_node, "session_config belongs to the base and cannot be "
                                       "changed by a draft")
            elif key not in allowed:
                self.problem(key_node, f"'{key}' has no place in a {self.kind} file; it "
                                       f"may have {', '.join(allowed)}")
        if "version" not in keys:
            self.problem(root, f'start the file with version: "{VERSION}"')
        else:
            node = keys["version"][1]
            if _text(node) != VERSION or node.tag != _TAG_STR:
                self.problem(node, f'version must be "{VERSION}", in quotes')
        for key, (_, value) in keys.items():
            if key in allowed and key != "version":
                getattr(self, f"_{self.kind}_{key}")(value)

    # --- nlu ---

    def _nlu_nlu(self, node: Node) -> None:
        for item in self.sequence(node, "nlu"):
            pairs = self.mapping(item, "an NLU item")
            keys = {key: (key_node, value) for key, key_node, value in pairs}
            heads = [k for k in ("intent", "synonym", "regex", "lookup") if k in keys]
            if len(heads) != 1:
                if pairs:
                    self.problem(item, "an NLU item names one intent, synonym, regex or lookup "
                                       "(e.g. - intent: ask_size)")
                continue
            head = heads[0]
            allowed = {head, "examples"} | ({"metadata"} if head == "intent" else set())
            for key, key_node, _ in pairs:
                if key not in allowed:
                    self.problem(key_node, f"'{key}' has no place in a {head} item; it may have "
                                           f"{', '.join(sorted(allowed))}")
            name = self.name(keys[head][1], head)
            if name is None:
                continue
            if head == "intent":
                if not _NAME.match(name):
                    self.problem(keys[head][1], f"intent '{name}': use letters, digits and _ "
                                                "only")
                    continue
                self.defs.examples.setdefault(name, self.at(keys[head][1]))
                self.ref("nlu_intent", name, keys[head][1])
            if "examples" not in keys:
                self.problem(item, f"{head} '{name}' has no examples")
                continue
            self._examples(keys["examples"][1], head, name)

    def _examples(self, node: Node, head: str, name: str) -> None:
        if isinstance(node, SequenceNode):  # the structured form: - text: ...
            for entry in node.value:
                text_node = dict((k, v) for k, _, v in self.mapping(entry, "an example")
                                 ).get("text")
                if text_node is None or not _text(text_node):
                    self.problem(entry, "each example needs its text:")
                elif head == "intent":
                    self._annotations(_text(text_node) or "", _line(text_node))
            return
        text = _text(node)
        if text is None or not isinstance(node, ScalarNode):
            self.problem(node, f"the examples of {head} '{name}' must be a block of lines "
                               "starting with '- ' (examples: |)")
            return
        if node.style == ">":
            self.problem(node, "write examples as a literal block (examples: |), not folded "
                               "(>), so each stays on its line")
            return
        first = _line(node) + (1 if node.style == "|" else 0)
        count = 0
        for offset, raw in enumerate(text.split("\n")):
            line = raw.strip()
            if not line:
                continue
            if not line.startswith("- ") or not line[2:].strip():
                self.problem(first + offset, f"each example of {head} '{name}' is one line "
                                             "starting with '- '")
                continue
            count += 1
            example = line[2:].strip()
            if head == "intent":
                self._annotations(example, first + offset)
            elif head == "regex":
                try:
                    re.compile(example)
                except re.error as exc:
                    self.problem(first + offset, f"regex '{name}': this pattern does not "
                                                 f"compile ({exc})")
        if not count:
            self.problem(node, f"{head} '{name}' has no examples")

    def _annotations(self, example: str, line: int) -> None:
        for entity in (*_ANNOTATION.findall(example), *_JSON_ANNOTATION.findall(example)):
            self.defs.refs.append(Ref("entity", entity.strip(), self.at(line)))

    # --- rules, stories and test stories ---

    def _rules_rules(self, node: Node) -> None:
        self._flows(node, "rule", self.defs.rules)

    def _stories_stories(self, node: Node) -> None:
        self._flows(node, "story", self.defs.stories)

    def _tests_stories(self, node: Node) -> None:
        self._flows(node, "story", self.defs.tests)

    def _flows(self, node: Node, noun: str, table: dict[str, Where]) -> None:
        allowed = ({"rule", "steps", "condition", "conversation_start", "wait_for_user_input",
                    "metadata"} if noun == "rule" else {"story", "steps", "metadata"})
        for item in self.sequence(node, f"{noun} list"):
            pairs = self.mapping(item, f"a {noun}")
            if not pairs:
                continue
            keys = {key: (key_node, value) for key, key_node, value in pairs}
            for key, key_node, _ in pairs:
                if key not in allowed:
                    self.problem(key_node, f"'{key}' has no place in a {noun}; it may have "
                                           f"{', '.join(sorted(allowed))}")
            if noun not in keys:
                self.problem(item, f"each {noun} needs a name: - {noun}: <what it does>")
                continue
            name = self.name(keys[noun][1], f"the {noun}'s name")
            if name is None:
                continue
            self.define(table, noun, name, keys[noun][1])
            if "steps" not in keys:
                self.problem(item, f"{noun} '{name}' has no steps")
                continue
            steps = self.sequence(keys["steps"][1], "steps")
            if not steps:
                self.problem(keys["steps"][1], f"{noun} '{name}' has no steps")
                continue
            conditional = "condition" in keys or "conversation_start" in keys
            if "condition" in keys:
                for step in self.sequence(keys["condition"][1], "condition"):
                    step_keys = {k for k, _, _ in self.mapping(step, "a condition")}
                    if not step_keys <= {"active_loop", "slot_was_set"}:
                        self.problem(step, "a condition is active_loop or slot_was_set")
                    self._step(step, noun)
            parsed = [self._step(step, noun) for step in steps]
            first = parsed[0]
            if not conditional and self.kind != "tests" and first and first[0] == "intent":
                second = parsed[1] if len(parsed) > 1 else None
                action = second[1] if second is not None and second[0] == "action" else ""
                self.defs.starts.setdefault((first[1], first[2]),
                                            (name, self.at(keys[noun][1]), action))

    def _step(self, node: Node, noun: str) -> tuple[str, str, frozenset[str]] | None:
        """Checks a step and notes what it uses; ("intent", name, entities) or ("action",
        name, {}) for the first steps' comparison with the base."""
        pairs = self.mapping(node, "a step")
        keys = {key: value for key, _, value in pairs}
        for key, key_node, _ in pairs:
            if key not in STEP_KEYS or (key == "checkpoint" and noun == "rule"):
                self.problem(key_node, f"'{key}' is not a step; a step is intent, action, "
                                       "active_loop, slot_was_set or or")
        found: tuple[str, str, frozenset[str]] | None = None
        if "intent" in keys:
            intent = self.name(keys["intent"], "intent")
            entities = self._entities(keys.get("entities"))
            if intent is not None:
                self.ref("intent", intent, keys["intent"])
                found = ("intent", intent, entities)
        elif "user" in keys and self.kind == "tests":
            self.problem(node, "a test step with user: needs the intent: it should get")
        if "action" in keys:
            action = self.name(keys["action"], "action")
            if action is not None:
                self.ref("action", action, keys["action"])
                found = found or ("action", action, frozenset())
        if "active_loop" in keys and not _is_null(keys["active_loop"]):
            form = self.name(keys["active_loop"], "active_loop")
            if form is not None:
                self.ref("form", form, keys["active_loop"])
        if "slot_was_set" in keys:
            for entry in self.sequence(keys["slot_was_set"], "slot_was_set"):
                if isinstance(entry, MappingNode):
                    for slot, slot_node, _ in self.mapping(entry, "slot_was_set"):
                        self.ref("slot", slot, slot_node)
                else:
                    slot_name = self.name(entry, "a slot")
                    if slot_name is not None:
                        self.ref("slot", slot_name, entry)
        if "or" in keys:
            for alternative in self.sequence(keys["or"], "or"):
                self._step(alternative, noun)
        return found

    def _entities(self, node: Node | None) -> frozenset[str]:
        names: set[str] = set()
        if node is None:
            return frozenset()
        for entry in self.sequence(node, "entities"):
            if isinstance(entry, MappingNode):
                for entity, entity_node, _ in self.mapping(entry, "an entity"):
                    if entity not in ("role", "group", "value"):
                        names.add(entity)
                        self.ref("entity", entity, entity_node)
            else:
                entity_name = self.name(entry, "an entity")
                if entity_name is not None:
                    names.add(entity_name)
                    self.ref("entity", entity_name, entry)
        return frozenset(names)

    # --- domain ---

    def _domain_intents(self, node: Node) -> None:
        for entry in self.sequence(node, "intents"):
            if isinstance(entry, MappingNode):
                for intent, key_node, value in self.mapping(entry, "an intent"):
                    self.define(self.defs.intents, "intent", intent, key_node)
                    if not _is_null(value):
                        self.defs.intents_with_properties.setdefault(intent, self.at(key_node))
            else:
                intent_name = self.name(entry, "an intent")
                if intent_name is not None:
                    if not _NAME.match(intent_name):
                        self.problem(entry, f"intent '{intent_name}': use letters, digits and _ "
                                            "only")
                    self.define(self.defs.intents, "intent", intent_name, entry)

    def _domain_entities(self, node: Node) -> None:
        for entry in self.sequence(node, "entities"):
            if isinstance(entry, MappingNode):
                for entity, key_node, _ in self.mapping(entry, "an entity"):
                    self.define(self.defs.entities, "entity", entity, key_node)
            else:
                entity_name = self.name(entry, "an entity")
                if entity_name is not None:
                    self.define(self.defs.entities, "entity", entity_name, entry)

    def _domain_slots(self, node: Node) -> None:
        for slot, key_node, value in self.mapping(node, "slots"):
            self.define(self.defs.slots, "slot", slot, key_node)
            spec = {k: (kn, v) for k, kn, v in self.mapping(value, f"slot '{slot}'")}
            kind = _text(spec["type"][1]) if "type" in spec else None
            if kind not in SLOT_TYPES:
                self.problem(spec["type"][1] if "type" in spec else key_node,
                             f"slot '{slot}' needs a type: one of {', '.join(SLOT_TYPES)}")
            if kind == "categorical" and "values" not in spec:
                self.problem(key_node, f"categorical slot '{slot}' needs its values")
            if "mappings" not in spec:
                self.problem(key_node, f"slot '{slot}' needs mappings (how it is filled; "
                                       "- type: custom when an action or form sets it)")
                continue
            for mapping in self.sequence(spec["mappings"][1], "mappings"):
                fields = {k: v for k, _, v in self.mapping(mapping, "a slot mapping")}
                mapping_type = _text(fields.get("type"))
                if mapping_type not in MAPPING_TYPES:
                    self.problem(mapping, f"slot '{slot}': a mapping's type is one of "
                                          f"{', '.join(MAPPING_TYPES)}")
                    continue
                if mapping_type == "from_entity":
                    entity = _text(fields.get("entity"))
                    if entity is None:
                        self.problem(mapping, f"slot '{slot}': a from_entity mapping names its "
                                              "entity")
                    else:
                        self.ref("entity", entity, fields["entity"])
                if mapping_type in ("from_intent", "from_trigger_intent") and \
                        "value" not in fields:
                    self.problem(mapping, f"slot '{slot}': a {mapping_type} mapping needs the "
                                          "value it sets")
                for key in ("intent", "not_intent"):
                    if key in fields:
                        values = ([fields[key]] if isinstance(fields[key], ScalarNode)
                                  else self.sequence(fields[key], key))
                        for value_node in values:
                            intent = _text(value_node)
                            if intent is not None:
                                self.ref("intent", intent, value_node)

    def _domain_forms(self, node: Node) -> None:
        for form, key_node, value in self.mapping(node, "forms"):
            self.define(self.defs.forms, "form", form, key_node)
            spec = {k: (kn, v) for k, kn, v in self.mapping(value, f"form '{form}'")}
            for key, (key_node2, _) in spec.items():
                if key not in ("required_slots", "ignored_intents"):
                    self.problem(key_node2, f"'{key}' has no place in a form; it may have "
                                            "required_slots, ignored_intents")
            if "required_slots" not in spec:
                self.problem(key_node, f"form '{form}' needs its required_slots")
                continue
            slots = []
            for entry in self.sequence(spec["required_slots"][1], "required_slots"):
                slot = self.name(entry, "a required slot")
                if slot is not None:
                    slots.append(slot)
                    self.ref("slot", slot, entry)
            if not slots:
                self.problem(spec["required_slots"][1], f"form '{form}' asks for no slot")
            self.defs.form_slots.setdefault(form, slots)

    def _domain_actions(self, node: Node) -> None:
        for entry in self.sequence(node, "actions"):
            names = ([k for k, _, _ in self.mapping(entry, "an action")]
                     if isinstance(entry, MappingNode) else [self.name(entry, "an action")])
            for action in names:
                if action is not None:
                    self.define(self.defs.actions, "action", action, entry)

    def _domain_responses(self, node: Node) -> None:
        for response, key_node, value in self.mapping(node, "responses"):
            if not response.startswith("utter_"):
                self.problem(key_node, f"response '{response}': a response's name starts "
                                       "with utter_")
            self.define(self.defs.responses, "response", response, key_node)
            variants = self.sequence(value, f"response '{response}'")
            if not variants:
                self.problem(key_node, f"response '{response}' needs at least one variant "
                                       "(- text: ...)")
            for variant in variants:
                fields = {k: (kn, v) for k, kn, v in self.mapping(variant, "a variant")}
                for key, (field_node, _) in fields.items():
                    if key not in VARIANT_KEYS:
                        self.problem(field_node, f"'{key}' has no place in a response; it may "
                                                 "have text, buttons, image, custom, channel, "
                                                 "condition")
                if fields and not any(key in fields for key in VARIANT_CONTENT):
                    self.problem(variant, f"response '{response}': each variant says something "
                                          "(text, buttons, image or custom)")
                if "text" in fields and _text(fields["text"][1]) is None:
                    self.problem(fields["text"][1], f"response '{response}': text must be text")
                if "buttons" in fields:
                    for button in self.sequence(fields["buttons"][1], "buttons"):
                        button_keys = {k for k, _, _ in self.mapping(button, "a button")}
                        if not {"title", "payload"} <= button_keys:
                            self.problem(button, "each button has a title and a payload")
                if "condition" in fields:
                    for condition in self.sequence(fields["condition"][1], "condition"):
                        spec = {k: v for k, _, v in self.mapping(condition, "a condition")}
                        slot = _text(spec.get("name"))
                        if slot is not None:
                            self.ref("slot", slot, spec["name"])


def parse(file: str, kind: str, text: str, *, base: bool = False) -> ParsedFile:
    """One file's shape problems and definitions (`base`: a file of the base, which may set
    session_config)."""
    reader = _Reader(file, kind, base)
    reader.read(text)
    return ParsedFile(file, kind, reader.defs, reader.problems)


# --- the set of drafts over the base --------------------------------------------------------

CUSTOM_ACTION = ("the action '{name}' does not exist: actions that run code are part of the "
                 "product and a draft cannot add one; use an utter_ response (defined under "
                 "responses in a domain draft), a form, or one of the base's actions (GET "
                 "/api/v1/training/base lists them)")


def our_problems(drafts: Sequence[ParsedFile], base: Definitions) -> list[Problem]:
    """The problems of the drafts (parsed) laid over the base's definitions."""
    problems = [problem for draft in drafts for problem in draft.problems]
    combined = Definitions()
    combined.merge(base)
    seen = Definitions()  # what the drafts define, first definition wins
    for draft in drafts:
        problems.extend(_redefinitions(draft, base, seen))
        seen.merge(draft.defs)
    for draft in drafts:
        combined.merge(draft.defs)
    for draft in drafts:
        problems.extend(_unknown(draft.defs.refs, combined))
        problems.extend(_without_examples(draft, combined))
    return sorted(problems, key=lambda p: (p.file, p.line, p.message))


def _redefinitions(draft: ParsedFile, base: Definitions, seen: Definitions
                   ) -> Iterable[Problem]:
    defs = draft.defs

    def problem(where: Where, message: str) -> Problem:
        return Problem(where.file, where.line, message)

    for slot, where in defs.slots.items():
        if slot in base.slots or slot in DEFAULT_SLOTS:
            forms = base.forms_asking_for(slot)
            used = f" (the base's {', '.join(forms)} asks for it)" if forms else ""
            origin = f" at {base.slots[slot]}" if slot in base.slots else " by Rasa"
            yield problem(where, f"the base defines slot '{slot}'{origin}{used}; a draft "
                                 "cannot redefine it: give your slot another name")
        elif slot in seen.slots:
            yield problem(where, f"slot '{slot}' is already defined in {seen.slots[slot]}")
    for form, where in defs.forms.items():
        if form in base.forms:
            yield problem(where, f"the base defines form '{form}' at {base.forms[form]}; a "
                                 "draft cannot redefine it: give your form another name")
        elif form in seen.forms:
            yield problem(where, f"form '{form}' is already defined in {seen.forms[form]}")
    for action, where in defs.actions.items():
        if action in base.actions or action in DEFAULT_ACTIONS:
            yield problem(where, f"the base already has action '{action}'; leave it out of "
                                 "your draft (rules and stories can use it as it is)")
        elif not action.startswith("utter_"):
            yield problem(where, CUSTOM_ACTION.format(name=action))
    for response, where in defs.responses.items():
        if response in base.responses:
            yield problem(where, f"the base defines response '{response}' at "
                                 f"{base.responses[response]}; change its text through the "
                                 f"admin API's responses (PUT /api/v1/responses/{response}), "
                                 "not in a draft")
        elif response in seen.responses:
            yield problem(where, f"response '{response}' is already defined in "
                                 f"{seen.responses[response]}")
    for intent, where in defs.intents_with_properties.items():
        if intent in base.intents:
            yield problem(where, f"the base defines intent '{intent}'; a draft may add examples "
                                 "to it but cannot change its settings")
    for noun, mine, theirs, drafted in (("rule", defs.rules, base.rules, seen.rules),
                                        ("story", defs.stories, base.stories, seen.stories),
                                        ("test story", defs.tests, base.tests, seen.tests)):
        for name, where in mine.items():
            if name in theirs:
                yield problem(where, f"the base has a {noun} named '{name}' ({theirs[name]}); "
                                     f"a draft cannot replace or change it: give your {noun} "
                                     "another name")
            elif name in drafted:
                yield problem(where, f"a {noun} named '{name}' is already in {drafted[name]}")
    for (intent, entities), (name, where, action) in defs.starts.items():
        theirs_start = base.starts.get((intent, entities))
        if theirs_start is not None and action and action != theirs_start[2]:
            base_name, base_where, base_action = theirs_start
            yield problem(where, f"'{name}' answers {intent} with {action}, but the base's rule "
                                 f"'{base_name}' ({base_where}) answers it with {base_action}; "
                                 "a draft cannot change a base flow: use a new intent")


def _unknown(refs: Iterable[Ref], known: Definitions) -> Iterable[Problem]:
    for ref in refs:
        name, where = ref.name, ref.where
        message = None
        if ref.what == "intent" and name not in known.intents and name not in DEFAULT_INTENTS:
            message = (f"intent '{name}' is not in the domain: list it under intents in a "
                       "domain draft (and give it examples in an nlu draft)")
        elif ref.what == "nlu_intent" and name not in known.intents \
                and name not in DEFAULT_INTENTS:
            message = (f"intent '{name}' has examples but is not in the domain: list it under "
                       "intents in a domain draft")
        elif ref.what == "slot" and name not in known.slots and name not in DEFAULT_SLOTS:
            message = f"slot '{name}' is not defined: define it under slots in a domain draft"
        elif ref.what == "entity" and name not in known.entities:
            message = (f"entity '{name}' is not defined: list it under entities in a domain "
                       "draft")
        elif ref.what == "form" and name not in known.forms:
            message = f"form '{name}' is not defined: define it under forms in a domain draft"
        elif ref.what == "action":
            if name in DEFAULT_ACTIONS or name in known.actions or name in known.forms:
                continue
            if name.startswith("utter_"):
                if name not in known.responses:
                    message = (f"there is no response '{name}': define it under responses in "
                               "a domain draft")
            else:
                message = CUSTOM_ACTION.format(name=name)
        if message is not None:
            yield Problem(where.file, where.line, message)


def _without_examples(draft: ParsedFile, known: Definitions) -> Iterable[Problem]:
    for intent, where in draft.defs.intents.items():
        if intent not in known.examples and intent not in DEFAULT_INTENTS:
            yield Problem(where.file, where.line, f"intent '{intent}' has no examples: give "
                                                  "it some in an nlu draft")


def rasa_problems(drafts: Sequence[ParsedFile]) -> list[Problem]:
    """Rasa's own checks (`rasa data validate`) of the drafts over the base: NOT RUN YET.
    They need Rasa's interpreter (the bot side's training worker, issue 15's next slice);
    until then this finds nothing and `validate` reports our checks alone."""
    return []


def validate(drafts: Sequence[tuple[str, str, str]], base: Definitions) -> list[Problem]:
    """Every problem of the shop's drafts, (kind, name, content) each: ours and Rasa's."""
    parsed = [parse(f"{kind}/{name}.yml", kind, content) for kind, name, content in drafts]
    merged = {(p.file, p.line, p.message): p for p in
              (*our_problems(parsed, base), *rasa_problems(parsed))}
    return sorted(merged.values(), key=lambda p: (p.file, p.line, p.message))
