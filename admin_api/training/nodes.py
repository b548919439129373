"""What reading a training data file gives (problems with file and line, the names it
defines and uses), and the small tools the readers share over PyYAML's composed nodes, whose
marks give each key and item its line."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

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
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
TAG_STR = "tag:yaml.org,2002:str"
TAG_NULL = "tag:yaml.org,2002:null"
# compose() on libyaml when it is there: a 512 KB draft in milliseconds instead of a second.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 200_000

# --- annotations --------------------------------------------------------------------
# An annotated entity in an example: [text](entity), [text](entity:value), [text]{"entity":..}.
# Found by a scan, not by the regular expressions they were found with (kept as the reference
# in tests/admin_api/test_training_annotations.py): `\[[^\]\n]*\]\(...` is tried from every
# `[` and reads on to the next `]` from each, so one line of 100 000 `[` (a 100 KB draft) held
# the admin service 27 s. From the `[` of a stretch without `]` a match is the same or there
# is none, so the scan tries it once; and it looks each closing character up among positions
# found once per example. Linear in the example's length, and the same matches.


@dataclass(frozen=True)
class AnnotationMatch:
    r"""One annotation, as a match of `\[(text)\](?:\((entity)(?::(value))?\)|(\{json\}))`
    gives it (`start`, `end`, `groups` like re.Match's)."""

    span: tuple[int, int]
    text: str
    entity: str | None  # [text](entity) and [text](entity:value)
    value: str | None  # [text](entity:value)
    json: str | None  # [text]{...}, braces included

    def start(self) -> int:
        return self.span[0]

    def end(self) -> int:
        return self.span[1]

    def groups(self, default: str = "") -> tuple[str, str, str, str]:
        return (self.text, default if self.entity is None else self.entity,
                default if self.value is None else self.value,
                default if self.json is None else self.json)


class _Positions:
    """Where the next of some characters is, from any offset: a bisection of their positions
    in the text, found at once (str.find again from each offset would be quadratic too)."""

    def __init__(self, text: str, characters: str) -> None:
        self._at = [found.start() for found in re.finditer(f"[{re.escape(characters)}]", text)]
        self._end = len(text)

    def next(self, offset: int) -> int:
        """The first position at `offset` or after; the text's length when there is none."""
        index = bisect_left(self._at, offset)
        return self._at[index] if index < len(self._at) else self._end


class Annotations:
    """The annotations of an example, left to right and not overlapping, as `finditer` of the
    pattern `AnnotationMatch` describes finds them (with JSON objects or without: `[a]{..}`
    is then no annotation, and a `[b](e)` inside its braces is one)."""

    def __init__(self, json: bool) -> None:
        self._json = json

    def finditer(self, example: str) -> Iterator[AnnotationMatch]:
        end = len(example)
        closing = _Positions(example, "]\n")  # what ends a text
        entity_end = _Positions(example, "):\n")
        value_end = _Positions(example, ")\n")
        json_end = _Positions(example, "}\n") if self._json else None
        offset = 0
        while (start := example.find("[", offset)) >= 0:
            # Every `[` from here to the next `]` or newline has that one as its text's end.
            close = closing.next(start + 1)
            if close == end:
                return
            if example[close] == "\n":
                offset = close + 1
                continue
            after = close + 1
            found: AnnotationMatch | None = None
            if after < end and example[after] == "(":
                stop = entity_end.next(after + 1)
                if after + 1 < stop < end and example[stop] == ")":
                    found = AnnotationMatch((start, stop + 1), example[start + 1:close],
                                            example[after + 1:stop], None, None)
                elif after + 1 < stop < end and example[stop] == ":":
                    shut = value_end.next(stop + 1)
                    if shut < end and example[shut] == ")":
                        found = AnnotationMatch((start, shut + 1), example[start + 1:close],
                                                example[after + 1:stop],
                                                example[stop + 1:shut], None)
            elif json_end is not None and after < end and example[after] == "{":
                shut = json_end.next(after + 1)
                if shut < end and example[shut] == "}":
                    found = AnnotationMatch((start, shut + 1), example[start + 1:close], None,
                                            None, example[after:shut + 1])
            if found is None:  # nor from any `[` before `close`: they end at the same `]`
                offset = close + 1
            else:
                yield found
                offset = found.end()

    def findall(self, example: str) -> list[str]:
        """The entity each [text](entity) or [text](entity:value) names."""
        return [found.entity for found in self.finditer(example) if found.entity is not None]


class JsonEntities:
    r"""The entity each `]{..."entity": "<name>"...}` names, as `findall` of
    `\]\{[^}\n]*"entity"\s*:\s*"([^"\n]+)"` finds them: of the `"entity"` keys between `]{`
    and the next `}` or newline, the last one followed by `: "<name>"`."""

    _KEY = '"entity"'
    _NAME = re.compile(r'"entity"\s*:\s*"([^"\n]+)"')

    def findall(self, example: str) -> list[str]:
        names = []
        closing = _Positions(example, "}\n")
        offset = 0
        while (start := example.find("]{", offset)) >= 0:
            close = closing.next(start + 2)
            last = close
            found = None
            # Each key at most once: a later `]{` before `close` sees the same keys or fewer.
            while found is None and (key := example.rfind(self._KEY, start + 2, last)) >= 0:
                found = self._NAME.match(example, key)
                last = key + len(self._KEY) - 1  # keys before this one (they may share a quote)
            if found is not None:
                names.append(found.group(1))
            offset = max(close, found.end() if found is not None else 0)
        return names


ANNOTATION = Annotations(json=False)
ANNOTATED = Annotations(json=True)
JSON_ANNOTATION = JsonEntities()


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    # "warning": worth reading, never stops a training (Rasa's "not used in any story or
    # rule", bot/rasa_checks.py); "error": the drafts cannot train as they are.
    severity: Literal["error", "warning"] = "error"


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Ref:
    """A name a file uses, to look up once every file is read."""

    what: str  # intent | nlu_intent | action | slot | form | entity | placeholder | payload_*
    name: str
    where: Where
    of: str = ""  # what uses it, when the message needs it: the response of a placeholder


@dataclass(frozen=True)
class Synonym:
    """A text Rasa's EntitySynonymMapper turns into `value` wherever an extractor finds it as
    an entity's value, whichever entity: a `- synonym:` item's example, or an annotated
    example whose value differs from its text ([1001](order_number:1003); then `entity`)."""

    text: str
    value: str
    entity: str | None
    where: Where  # the text's line
    value_where: Where  # the value's line (a `- synonym:` item's head)


@dataclass(frozen=True)
class Annotated:
    """An entity's value as an NLU example marks it: `text` at `start:end` of `example`, the
    example as Rasa reads it (annotations reduced to their text)."""

    entity: str
    text: str
    example: str
    start: int
    end: int
    where: Where


@dataclass(frozen=True)
class GuardedStart:
    """A rule with a condition or `conversation_start: true` that starts with an intent."""

    intent: str
    entities: frozenset[str]
    name: str
    where: Where
    action: str  # the action that follows ("" when none does)
    when: str  # "at a conversation's start" or "under its condition"
    loops: frozenset[str]  # the forms its condition requires active (active_loop: <form>)


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
    guarded: list[GuardedStart] = field(default_factory=list)
    entities_with_properties: dict[str, Where] = field(default_factory=dict)
    regexes: dict[str, Where] = field(default_factory=dict)  # `- regex:` items by name
    lookups: dict[str, Where] = field(default_factory=dict)  # `- lookup:` items by name
    # How an entity's values are recognised: a regex named after it (its patterns, each where
    # it is written), and texts known as its values (its lookup table's entries, annotated
    # examples), lower-cased as Rasa's synonym mapper compares them.
    patterns: dict[str, list[tuple[str, Where]]] = field(default_factory=dict)
    values: dict[str, dict[str, Where]] = field(default_factory=dict)
    listed: dict[str, list[tuple[str, Where]]] = field(default_factory=dict)  # lookup entries
    synonyms: list[Synonym] = field(default_factory=list)
    annotated: list[Annotated] = field(default_factory=list)  # entity values in examples
    refs: list[Ref] = field(default_factory=list)

    def merge(self, other: Definitions) -> None:
        for name in ("intents", "intents_with_properties", "entities", "slots", "forms",
                     "form_slots", "actions", "responses", "examples", "rules", "stories",
                     "tests", "starts", "entities_with_properties", "regexes", "lookups"):
            mine = getattr(self, name)
            for key, value in getattr(other, name).items():
                mine.setdefault(key, value)
        for entity, patterns in other.patterns.items():
            self.patterns.setdefault(entity, []).extend(patterns)
        for lookup, entries in other.listed.items():
            self.listed.setdefault(lookup, []).extend(entries)
        for entity, values in other.values.items():
            known = self.values.setdefault(entity, {})
            for value, where in values.items():
                known.setdefault(value, where)
        self.guarded.extend(other.guarded)
        self.synonyms.extend(other.synonyms)
        self.annotated.extend(other.annotated)
        self.refs.extend(other.refs)

    def forms_asking_for(self, slot: str) -> list[str]:
        return sorted(form for form, slots in self.form_slots.items() if slot in slots)


@dataclass
class ParsedFile:
    file: str  # "nlu/sizes.yml" for a draft, "data/nlu/orders.yml" for the base
    kind: str
    defs: Definitions
    problems: list[Problem]

# --- reading -----------------------------------------------------------------------

def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def text_of(node: Node | None) -> str | None:
    """A scalar's text (a string, number or word as written); None for anything else."""
    if isinstance(node, ScalarNode) and node.tag != TAG_NULL:
        return str(node.value)
    return None


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == TAG_NULL)


def walk(root: Node) -> Iterator[Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


class FileReader:
    """One file's problems and definitions as its readers find them."""

    def __init__(self, file: str, kind: str, base: bool = False) -> None:
        self.file, self.kind, self.base = file, kind, base
        self.defs = Definitions()
        self.problems: list[Problem] = []

    def at(self, node: Node | int) -> Where:
        return Where(self.file, node if isinstance(node, int) else line_of(node))

    def problem(self, node: Node | int, message: str) -> None:
        self.problems.append(Problem(self.file, self.at(node).line, message))

    def ref(self, what: str, name: str, node: Node | int, of: str = "") -> None:
        self.defs.refs.append(Ref(what, name, self.at(node), of))

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
            key = text_of(key_node)
            if key is None:
                self.problem(key_node, f"{what}: every key must be a plain name")
                continue
            if key in seen:
                self.problem(key_node, f"'{key}' appears twice (first at line {seen[key]})")
                continue
            seen[key] = line_of(key_node)
            pairs.append((key, key_node, value_node))
        return pairs

    def sequence(self, node: Node, what: str) -> list[Node]:
        if is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.problem(node, f"{what} must be a list (lines starting with '- ')")
            return []
        return list(node.value)

    def name(self, node: Node, what: str) -> str | None:
        text = text_of(node)
        if text is None or not text.strip():
            self.problem(node, f"{what} must be a name")
            return None
        return text

