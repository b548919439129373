"""Reading one training data file of a kind (nlu, rules, stories, tests, domain): YAML syntax,
the top-level keys the kind allows, `version: "3.1"`, and each kind's shapes; what it defines and
the names it uses, for the checks over the base (admin_api/training/checks.py)."""

from __future__ import annotations

import re

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from admin_api.training.domain_file import DomainReader
from admin_api.training.nodes import (
    ANNOTATED,
    ANNOTATION,
    JSON_ANNOTATION,
    LOADER,
    MAX_NODES,
    NAME,
    STEP_KEYS,
    TAG_STR,
    TOP_KEYS,
    VERSION,
    Annotated,
    GuardedStart,
    ParsedFile,
    Ref,
    Synonym,
    Where,
    is_null,
    line_of,
    text_of,
    walk,
)
from core import nesting


class _Reader(DomainReader):
    # --- the file ---

    def read(self, text: str) -> None:
        try:
            root = yaml.compose(text, Loader=LOADER)  # noqa: S506 (safe loader's composer)
        except yaml.MarkedYAMLError as exc:
            self.problem(syntax_line(text, exc),
                         f"YAML syntax error: {exc.problem or exc.context or exc}")
            return
        except yaml.YAMLError as exc:
            self.problem(1, f"YAML error: {exc}")
            return
        if root is None:
            self.problem(1, f'the file is empty; start it with version: "{VERSION}"')
            return
        seen: set[int] = set()
        for count, node in enumerate(walk(root)):
            if id(node) in seen:
                self.problem(node, "YAML aliases (*name) are not supported: write the content "
                                   "out where it is used")
                return
            seen.add(id(node))
            if count > MAX_NODES:
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
            if text_of(node) != VERSION or node.tag != TAG_STR:
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
                if not NAME.match(name):
                    self.problem(keys[head][1], f"intent '{name}': use letters, digits and _ "
                                                "only")
                    continue
                self.defs.examples.setdefault(name, self.at(keys[head][1]))
                self.ref("nlu_intent", name, keys[head][1])
            elif head == "regex":
                self.defs.regexes.setdefault(name, self.at(keys[head][1]))
            elif head == "lookup":
                self.defs.lookups.setdefault(name, self.at(keys[head][1]))
            if "examples" not in keys:
                self.problem(item, f"{head} '{name}' has no examples")
                continue
            self._examples(keys["examples"][1], head, name, self.at(keys[head][1]))

    def _examples(self, node: Node, head: str, name: str, named_at: Where) -> None:
        if isinstance(node, SequenceNode):  # the structured form: - text: ...
            for entry in node.value:
                text_node = dict((k, v) for k, _, v in self.mapping(entry, "an example")
                                 ).get("text")
                if text_node is None or not text_of(text_node):
                    self.problem(entry, "each example needs its text:")
                elif head == "intent":
                    self._annotations(text_of(text_node) or "", line_of(text_node))
            return
        text = text_of(node)
        if text is None or not isinstance(node, ScalarNode):
            self.problem(node, f"the examples of {head} '{name}' must be a block of lines "
                               "starting with '- ' (examples: |)")
            return
        if node.style == ">":
            self.problem(node, "write examples as a literal block (examples: |), not folded "
                               "(>), so each stays on its line")
            return
        first = line_of(node) + (1 if node.style == "|" else 0)
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
            where = self.at(first + offset)
            if head == "intent":
                self._annotations(example, first + offset)
            elif head == "regex":
                try:
                    re.compile(example)
                except re.error as exc:
                    self.problem(first + offset, f"regex '{name}': this pattern does not "
                                                 f"compile ({exc})")
                else:
                    self.defs.patterns.setdefault(name, []).append((example, where))
            elif head == "lookup":
                self.defs.values.setdefault(name, {}).setdefault(example.lower(), where)
                self.defs.listed.setdefault(name, []).append((example, where))
            else:
                self.defs.synonyms.append(Synonym(example, name, None, where, named_at))
        if not count:
            self.problem(node, f"{head} '{name}' has no examples")

    def _annotations(self, example: str, line: int) -> None:
        for entity in (*ANNOTATION.findall(example), *JSON_ANNOTATION.findall(example)):
            self.defs.refs.append(Ref("entity", entity.strip(), self.at(line)))
        marked = []  # (entity, text, start, end) in the example as Rasa reads it
        plain, done = [], 0
        for found in ANNOTATED.finditer(example):
            text, entity, value, as_json = found.groups(default="")
            plain.append(example[done:found.start()])
            done = found.end()
            start = sum(map(len, plain))
            plain.append(text)
            if as_json:
                try:
                    spec = nesting.loads(as_json)
                except ValueError:  # not JSON, or nested past its bound (core/nesting.py)
                    continue
                if not isinstance(spec, dict) or not isinstance(spec.get("entity"), str):
                    continue
                entity = spec["entity"]
                value = str(spec["value"]) if spec.get("value") is not None else ""
            entity = entity.strip()
            marked.append((entity, text, start, start + len(text)))
            self.defs.values.setdefault(entity, {}).setdefault(text.lower(), self.at(line))
            if value and value != text:  # Rasa keeps it as a synonym of the text
                self.defs.synonyms.append(Synonym(text, value, entity, self.at(line),
                                                  self.at(line)))
        if marked:
            read = "".join(plain) + example[done:]
            self.defs.annotated.extend(Annotated(entity, text, read, start, end, self.at(line))
                                       for entity, text, start, end in marked)

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
            at_start = "conversation_start" in keys and \
                (text_of(keys["conversation_start"][1]) or "").lower() == "true"
            conditions: list[Node] = []
            loops: set[str] = set()
            if "condition" in keys:
                conditions = self.sequence(keys["condition"][1], "condition")
                for step in conditions:
                    step_pairs = self.mapping(step, "a condition")
                    if not {k for k, _, _ in step_pairs} <= {"active_loop", "slot_was_set"}:
                        self.problem(step, "a condition is active_loop or slot_was_set")
                    loops.update(text_of(v) or "" for k, _, v in step_pairs
                                 if k == "active_loop" and not is_null(v))
                    self._step(step, noun)
            parsed = [self._step(step, noun) for step in steps]
            first = parsed[0]
            if self.kind == "tests" or not first or first[0] != "intent":
                continue
            second = parsed[1] if len(parsed) > 1 else None
            action = second[1] if second is not None and second[0] == "action" else ""
            if at_start or conditions:
                # Not a plain start: checked against the base's flows whatever the condition
                # (checks.py), as Rasa's RulePolicy prefers a rule with more conditions.
                when = "at a conversation's start" if at_start else "under its condition"
                self.defs.guarded.append(GuardedStart(first[1], first[2], name,
                                                      self.at(keys[noun][1]), action, when,
                                                      frozenset(loops - {""})))
            else:
                start = (first[1], first[2])
                other = self.defs.starts.setdefault(start, (name, self.at(keys[noun][1]),
                                                            action))
                if action and other[2] and action != other[2]:
                    self.problem(keys[noun][1], contradiction(name, start, action, other))

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
        if "active_loop" in keys and not is_null(keys["active_loop"]):
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


def contradiction(name: str, start: tuple[str, frozenset[str]], action: str,
                  other: tuple[str, Where, str]) -> str:
    """Two flows of the drafts that answer the same start differently: Rasa's RulePolicy
    refuses to train them ("Contradicting rules or stories found"), which its checks before
    training do not see."""
    intent, entities = start
    shown = intent + (f" (with {', '.join(sorted(entities))})" if entities else "")
    return (f"'{name}' answers {shown} with {action}, but '{other[0]}' ({other[1]}) answers "
            f"it with {other[2]}: Rasa cannot train flows that contradict each other; keep one "
            "answer, or start one of them with another intent")


# Line breaks as an editor counts them (a textarea reads \r\n and \r as \n); YAML also
# counts U+0085, U+2028 and U+2029, which editors show within a line.
_BREAK = re.compile(r"\r\n|\r|\n")


def syntax_line(text: str, exc: yaml.MarkedYAMLError) -> int:
    """The line (1-based, as the designer's editor numbers it) of a YAML syntax error.

    PyYAML marks where it noticed the error, which is often past it: a key without its colon
    is noticed on a later line ("could not find expected ':'"), an unclosed quote or bracket at
    the end of the file, which libyaml puts on a line after the last (it ends the stream with
    a line break of its own), or on the next line with text. Then the context mark is where
    the key, quote or bracket starts; when that is at the end too, the last line with text is
    the one to look at."""
    marks = [exc.problem_mark, exc.context_mark]
    if ("expected ':'" in (exc.problem or "")
            or (exc.context or "").startswith("while parsing a flow")):
        marks.reverse()  # the key's or the bracket's start, not where the parser gave up
    end = len(text.rstrip())
    for mark in marks:
        if mark is not None and 0 <= mark.index < end:
            return len(_BREAK.findall(text, 0, mark.index)) + 1
    return len(_BREAK.findall(text, 0, end)) + 1


def parse(file: str, kind: str, text: str, *, base: bool = False) -> ParsedFile:
    """One file's shape problems and definitions (`base`: a file of the base, which may set
    session_config)."""
    reader = _Reader(file, kind, base)
    reader.read(text)
    return ParsedFile(file, kind, reader.defs, reader.problems)


