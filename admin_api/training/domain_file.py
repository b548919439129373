"""Reading a domain draft: intents, entities, slots, forms, actions and responses, their
shapes, and the names they use (looked up once every file is read, admin_api/training/checks.py).
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode

from admin_api.training.nodes import (
    MAPPING_TYPES,
    NAME,
    SLOT_TYPES,
    VARIANT_CONTENT,
    VARIANT_KEYS,
    FileReader,
    is_null,
    text_of,
)


class DomainReader(FileReader):
    """The domain's sections (`_domain_<key>`, called by the file reader per top-level key)."""

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
                        button_keys = {k for k, _, _ in self.mapping(button, "a button")}
                        if not {"title", "payload"} <= button_keys:
                            self.problem(button, "each button has a title and a payload")
                if "condition" in fields:
                    for condition in self.sequence(fields["condition"][1], "condition"):
                        spec = {k: v for k, _, v in self.mapping(condition, "a condition")}
                        slot = text_of(spec.get("name"))
                        if slot is not None:
                            self.ref("slot", slot, spec["name"])


