"""Reading a domain draft: intents, entities, slots, forms, actions and responses, their
shapes, and the names they use (looked up once every file is read, admin_api/training/checks.py).

Responses are read as the bot will say them (tenants/texts.py renders them as Rasa does): a
`{placeholder}` is a name to look up among the slots (`placeholder` refs: one that names no
slot is said as written, one of the slots the bot keeps for itself has no place in a message),
and the text must format at all; a variant's `channel` is one of ours (core/metrics.py
CHANNELS, as each turn's sender id names it: a variant for "twilio" reaches nobody), and one
variant at least is for every channel; a button's "/intent" or "/intent{json}" payload names an
intent and entities that exist (`payload_intent`, `payload_entity` refs) with entities as a
JSON object, since Rasa reads anything else as words the visitor typed, or drops the entities.
Each problem is on the line of what is wrong in the response: its text, channel or payload.
"""

from __future__ import annotations

import re

from yaml.nodes import MappingNode, Node, ScalarNode

from admin_api.training.nodes import (
    MAPPING_TYPES,
    NAME,
    SLOT_TYPES,
    VARIANT_CONTENT,
    VARIANT_KEYS,
    FileReader,
    is_null,
    line_of,
    text_of,
    walk,
)
from core import nesting
from core.metrics import CHANNELS

# Keys of a variant the renderer fills in (tenants/texts.py, as Rasa's response.py).
TEMPLATED = ("text", "image", "custom", "buttons", "attachment", "quick_replies")
# Rasa's interpolator: "{name}" with no newline or brace inside is a placeholder.
TAG = re.compile(r"{([^\n{}]+?)}")
# rasa/shared/core/training_data/story_reader/yaml_story_reader.py _regex_message_pattern
PAYLOAD = re.compile(r"^/(?P<intent>[^{@]+)(?P<confidence>@[0-9.]+)?(?P<entities>{.+})?"
                     r"(?P<rest>.*)$", re.DOTALL)
SHOWN = 80  # of a payload in a problem: its start says which; a draft line may be 512 KB
UNKNOWN_CHANNEL = ("response '{response}': channel '{channel}' is none of this bot's "
                   "channels, so no visitor would get this variant; a variant's channel is "
                   f"one of {', '.join(CHANNELS)} (how each turn names its channel), or "
                   "leave channel out for every channel")
EVERY_VARIANT_A_CHANNEL = ("response '{response}': every variant is for a channel "
                           "({channels}), so on the others the bot would say nothing; add a "
                           "variant without channel")


class DomainReader(FileReader):
    """The domain's sections (`_domain_<key>`, called by the file reader per top-level key)."""

    def __init__(self, file: str, kind: str, base: bool = False) -> None:
        super().__init__(file, kind, base)
        self._payloads: set[Node] = set()  # buttons' "/intent" payloads: JSON, no templates

    def _domain_intents(self, node: Node) -> None:
        for entry in self.sequence(node, "intents"):
            if isinstance(entry, MappingNode):
                for intent, key_node, value in self.mapping(entry, "an intent"):
                    self.define(self.defs.intents, "intent", intent, key_node)
                    if not is_null(value):
                        self.defs.intents_with_properties.setdefault(intent, self.at(key_node))
            else:
                intent_name = self.name(entry, "an intent")
                if intent_name is not None:
                    if not NAME.match(intent_name):
                        self.problem(entry, f"intent '{intent_name}': use letters, digits and _ "
                                            "only")
                    self.define(self.defs.intents, "intent", intent_name, entry)

    def _domain_entities(self, node: Node) -> None:
        for entry in self.sequence(node, "entities"):
            if isinstance(entry, MappingNode):
                for entity, key_node, value in self.mapping(entry, "an entity"):
                    self.define(self.defs.entities, "entity", entity, key_node)
                    if not is_null(value):  # roles, groups, influence_conversation
                        self.defs.entities_with_properties.setdefault(entity,
                                                                      self.at(key_node))
            else:
                entity_name = self.name(entry, "an entity")
                if entity_name is not None:
                    self.define(self.defs.entities, "entity", entity_name, entry)

    def _domain_slots(self, node: Node) -> None:
        for slot, key_node, value in self.mapping(node, "slots"):
            self.define(self.defs.slots, "slot", slot, key_node)
            spec = {k: (kn, v) for k, kn, v in self.mapping(value, f"slot '{slot}'")}
            kind = text_of(spec["type"][1]) if "type" in spec else None
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
                mapping_type = text_of(fields.get("type"))
                if mapping_type not in MAPPING_TYPES:
                    self.problem(mapping, f"slot '{slot}': a mapping's type is one of "
                                          f"{', '.join(MAPPING_TYPES)}")
                    continue
                if mapping_type == "from_entity":
                    entity = text_of(fields.get("entity"))
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
                            intent = text_of(value_node)
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
            channels: list[str] = []  # each variant's, "" for every channel
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
                if "text" in fields and text_of(fields["text"][1]) is None:
                    self.problem(fields["text"][1], f"response '{response}': text must be text")
                if "buttons" in fields:
                    for button in self.sequence(fields["buttons"][1], "buttons"):
                        button_fields = {k: v for k, _, v in self.mapping(button, "a button")}
                        if not {"title", "payload"} <= button_fields.keys():
                            self.problem(button, "each button has a title and a payload")
                        if "payload" in button_fields:
                            self._payload(response, button_fields["payload"],
                                          text_of(button_fields.get("title")) or "")
                for key in TEMPLATED:
                    if key in fields:
                        self._templates(response, fields[key][1])
                if "channel" in fields:
                    channel = text_of(fields["channel"][1])
                    if channel is not None:
                        channels.append(channel)
                        if channel not in CHANNELS:
                            self.problem(fields["channel"][1], UNKNOWN_CHANNEL.format(
                                response=response, channel=channel))
                elif fields:
                    channels.append("")
            if channels and all(channels):
                self.problem(key_node, EVERY_VARIANT_A_CHANNEL.format(
                    response=response, channels=", ".join(sorted(set(channels)))))
                if "condition" in fields:
                    for condition in self.sequence(fields["condition"][1], "condition"):
                        spec = {k: v for k, _, v in self.mapping(condition, "a condition")}
                        slot = text_of(spec.get("name"))
                        if slot is not None:
                            self.ref("slot", slot, spec["name"])

    def _templates(self, response: str, node: Node) -> None:
        """The texts of a variant (also inside buttons, custom, ...) as the renderer fills
        them in: each `{name}` must be a slot (looked up with every file read), and the text
        must format, else the renderer fails and the visitor gets nothing."""
        for scalar in (n for n in walk(node) if isinstance(n, ScalarNode)):
            text = text_of(scalar)
            if text is None or (text.startswith("/") and scalar in self._payloads):
                continue  # a payload's JSON is no template (rendered as written)
            try:
                TAG.sub(r"{0[\1]}", text).format(_Anything())
            except (ValueError, IndexError, AttributeError, KeyError, TypeError) as exc:
                self.problem(scalar, f"response '{response}': the text {text[:60]!r} does not "
                                     f"format ({exc}), so the bot would fail to say it; write a "
                                     "literal brace as {{ or }}")
                continue
            first = line_of(scalar) + (1 if scalar.style in ("|", ">") else 0)
            escaped = text.replace("{{", "  ").replace("}}", "  ")
            for found in TAG.finditer(escaped):
                line = first + text.count("\n", 0, found.start()) \
                    if scalar.style == "|" else line_of(scalar)
                self.ref("placeholder", found.group(1), line, of=response)

    def _payload(self, response: str, node: Node, title: str) -> None:
        """A button's payload as Rasa reads it: "/intent", "/intent{json}" sends that intent
        (and entities) without NLU; any other text is read as the visitor's words."""
        payload = (text_of(node) or "").strip()
        if not payload.startswith("/"):
            return
        self._payloads.add(node)
        button = f"response '{response}': the button '{title}' sends {_shown(payload)}"
        parsed = PAYLOAD.match(payload)
        if parsed is None or not parsed.group("intent").strip():
            self.problem(node, f"{button}, which is not /<intent> or /<intent>{{\"<entity>\": "
                               "\"<value>\"}: Rasa would take it as words the visitor typed")
            return
        self.ref("payload_intent", parsed.group("intent").strip(), node, of=response)
        if parsed.group("entities"):
            try:  # nested past the parser's depth too (core/nesting.py): a 500 on RecursionError
                entities = nesting.loads(parsed.group("entities"))
                if not isinstance(entities, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                self.problem(node, f"{button}, whose entities are not a JSON object ({exc}): "
                                   "Rasa would drop them; write them as "
                                   '{"<entity>": "<value>"}, in double quotes')
            else:
                for entity in entities:
                    self.ref("payload_entity", str(entity), node, of=response)
        if parsed.group("rest").strip():
            self.problem(node, f"{button}: Rasa reads no further than the intent and its "
                               f"entities, so '{_shown(parsed.group('rest').strip())}' would be "
                               "ignored")


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


class _Anything(dict[str, str]):
    """Any placeholder's value, to see whether a text formats at all."""

    def __missing__(self, key: str) -> str:
        return "x"
