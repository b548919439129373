"""Our checks of a shop's drafts, layered over the base: what `POST /training/validate` and
each `PUT /training/{kind}/{name}` report, as problems with file, line and a sentence.

`validate` runs our checks (also on every PUT of a draft); `validate_all` (POST
/training/validate) adds Rasa's own (`rasa data validate`: the domain as Rasa reads it, names
used in rules and stories, forms and slot mappings, story/rule conflicts, Rasa's YAML schema),
which run in Rasa's interpreter, the workshop (bot/workshop.py), asked over HTTP
(admin_api/workshop.py): `rasa_problems`. Both are merged, the same finding once. While our
checks find YAML syntax errors Rasa's are not asked for: Rasa would stop at the same broken
file, and validation stays quick while the designer fixes it (`Checked.rasa_checked` says so).
What Rasa only warns about (an intent or a response "not used in any story or rule") comes
back as `Checked.warnings`, shown to the designer and never stopping a training, with our own
warnings (`severity` "warning"); the rest are `Checked.problems`, which do. A PUT answers our
errors only (`validate`).

What is checked, per draft (`<kind>/<name>.yml`, lines 1-based from PyYAML's node marks; one
file at a time in reader.py and domain_file.py, the set over the base here):

- YAML syntax; the top-level keys each kind allows; `version: "3.1"`.
- Shapes: NLU items are an intent, synonym, regex or lookup with `examples: |` (a block of
  "- " lines); rules and stories have names and steps; slots a type and mappings; forms
  their required slots; responses are `utter_*` with text, buttons, etc.
- The base stays intact. Drafts only add: intents, examples (also to base intents),
  entities, slots, responses, rules, stories, forms. A draft may not redefine a slot, form,
  action, entity or response of the base, reuse the name of a base rule or story, set
  session_config, or start a rule or story with a base intent and go on differently from the
  base's rule for it; a rule with a condition or `conversation_start` may not start with an
  intent the base's rules answer at all (RulePolicy prefers it to the base's rule wherever its
  condition holds), unless its condition is a draft's own form being active. Nor may a draft
  change how the base's entities are read: a regex or lookup named after a base entity, or a
  synonym (a `- synonym:` item or an annotation with a value) whose text or value can be a
  value of a base entity (its regexes match it, its lookups or examples list it) or that maps
  a base entity's values at all. Steps may use only what exists: intents, slots, entities
  and forms of the base or the drafts, `utter_` responses, and the base's actions (custom
  actions are code, which a draft cannot add).
- Responses say what the bot can say (domain_file.py): a `{placeholder}` is a slot of the base
  or the drafts and none the bot keeps for itself (tenants/texts.py INTERNAL_SLOTS), a channel
  is one of ours, a button's "/intent{...}" payload names an intent and entities that exist.
- The base's entity values stay the base's: a regex or lookup of the shop's own entity that
  also matches a value the base's examples mark is an error when Rasa would extract by it,
  else a warning (`_taken_values` says why).
- Drafts agree with each other: two rules (in one draft or two) that start with the same
  intent and go on with different actions contradict each other, which Rasa's RulePolicy
  refuses at training time, minutes later, while Rasa's checks let them pass.
- Stories are used: with config.yml's policies (RulePolicy alone today) no story is ever
  followed, so each story of a stories draft is a problem that says to write it as a rule.
  Test stories (`tests` drafts) are not training data: they are only run against a trained
  version (bot/project.py), so they may expect what the bot does not do yet.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from admin_api.training.base import RegexExtraction, policies, regex_extraction
from admin_api.training.nodes import (
    DEFAULT_ACTIONS,
    DEFAULT_INTENTS,
    DEFAULT_SLOTS,
    Definitions,
    ParsedFile,
    Problem,
    Ref,
    Where,
)
from admin_api.training.reader import contradiction, parse
from tenants.texts import INTERNAL_SLOTS

# Rasa's policies that learn from stories (rasa/core/policies/): with none of them in
# config.yml, only rules are followed.
STORY_POLICIES = frozenset({"MemoizationPolicy", "AugmentedMemoizationPolicy", "TEDPolicy"})
UNUSED_STORY = ("story '{name}' would never be followed: this bot's dialogue policies "
                "({policies} in config.yml) learn from rules only, not from stories; write the "
                "flow as a rule (a rules draft with the same steps under `- rule:`) and delete "
                "this stories draft")
ENTITIES_STAY = "a draft cannot change how the base's entities are read"
CUSTOM_ACTION = ("the action '{name}' does not exist: actions that run code are part of the "
                 "product and a draft cannot add one; use an utter_ response (defined under "
                 "responses in a domain draft), a form, or one of the base's actions (GET "
                 "/api/v1/training/base lists them)")


def our_problems(drafts: Sequence[ParsedFile], base: Definitions,
                 dialogue_policies: Sequence[str] | None = None) -> list[Problem]:
    """The problems of the drafts (parsed) laid over the base's definitions, for the dialogue
    policies config.yml names (unless given)."""
    problems = [problem for draft in drafts for problem in draft.problems]
    problems.extend(_unused_stories(drafts, policies() if dialogue_policies is None
                                    else tuple(dialogue_policies)))
    combined = Definitions()
    combined.merge(base)
    seen = Definitions()  # what the drafts define, first definition wins
    for draft in drafts:
        problems.extend(_redefinitions(draft, base, seen))
        problems.extend(_rewrites(draft, base))
        seen.merge(draft.defs)
    for draft in drafts:
        combined.merge(draft.defs)
    marked = {found.entity for found in combined.annotated}
    # A draft that does not parse defines nothing: what other drafts name from it would look
    # unknown, its intents without examples. Those findings wait until its YAML is fixed.
    unreadable = any(p.message.startswith(SYNTAX) for draft in drafts for p in draft.problems)
    for draft in drafts:
        if not unreadable:
            problems.extend(_unknown(draft.defs.refs, combined))
            problems.extend(_without_examples(draft, combined))
        problems.extend(_taken_values(draft, base, marked, regex_extraction()))
    return sorted(problems, key=lambda p: (p.file, p.line, p.message))


def _unused_stories(drafts: Sequence[ParsedFile], dialogue_policies: tuple[str, ...]
                    ) -> Iterable[Problem]:
    if STORY_POLICIES & set(dialogue_policies):
        return
    named = ", ".join(dialogue_policies) or "no policies"
    for draft in drafts:
        if draft.kind == "stories":
            for name, where in draft.defs.stories.items():
                yield Problem(where.file, where.line,
                              UNUSED_STORY.format(name=name, policies=named))


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
    for entity, where in defs.entities_with_properties.items():
        if entity in base.entities:
            yield problem(where, f"the base defines entity '{entity}' at "
                                 f"{base.entities[entity]}; a draft cannot redefine it or change "
                                 "its roles, groups or settings: give your entity another name")
    for noun, tables, effect in (
            ("regex", defs.regexes, "Rasa's RegexEntityExtractor would extract it by your "
                                    "pattern too"),
            ("lookup", defs.lookups, "your entries would count as its values for Rasa's "
                                     "RegexFeaturizer")):
        for name, where in tables.items():
            theirs_where = base.entities.get(name) or base.regexes.get(name) \
                or base.lookups.get(name)
            if theirs_where is not None:
                yield problem(where, f"{noun} '{name}' is named after the base's entity '{name}' "
                                     f"({theirs_where}): {effect}, also in the base's flows; "
                                     f"{ENTITIES_STAY}: name the {noun} after an entity of "
                                     "your own")
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
        drafted_start = seen.starts.get((intent, entities))
        if theirs_start is not None and action and action != theirs_start[2]:
            base_name, base_where, base_action = theirs_start
            yield problem(where, f"'{name}' answers {intent} with {action}, but the base's rule "
                                 f"'{base_name}' ({base_where}) answers it with {base_action}; "
                                 "a draft cannot change a base flow: use a new intent")
        elif drafted_start is not None and action and drafted_start[2] \
                and action != drafted_start[2]:
            yield problem(where, contradiction(name, (intent, entities), action, drafted_start))
    yield from _guarded_starts(defs, base)


def _guarded_starts(defs: Definitions, base: Definitions) -> Iterable[Problem]:
    """Rules with a condition or at a conversation's start that begin with an intent the
    base's rules answer: Rasa's RulePolicy prefers the rule with more conditions, so such a
    rule replaces the base's answer wherever its condition holds, whatever it is. Only a
    condition on a form of the drafts' own (active_loop) keeps it out of the base's flows."""
    answers: dict[tuple[str, frozenset[str]], tuple[str, Where, str]] = dict(base.starts)
    for theirs in base.guarded:
        answers.setdefault((theirs.intent, theirs.entities),
                           (theirs.name, theirs.where, theirs.action))
    for mine in defs.guarded:
        answer = answers.get((mine.intent, mine.entities))
        if answer is None or (mine.loops and not mine.loops & base.forms.keys()):
            continue
        base_name, base_where, base_action = answer
        shown = mine.intent + (f" (with {', '.join(sorted(mine.entities))})"
                               if mine.entities else "")
        if mine.action and mine.action != base_action:
            said = (f"'{mine.name}' answers {shown} with {mine.action} {mine.when}, but the "
                    f"base's rule '{base_name}' ({base_where}) answers it with {base_action}")
        else:
            said = (f"'{mine.name}' starts with {shown} {mine.when}, which the base's rule "
                    f"'{base_name}' ({base_where}) answers with {base_action}")
        yield Problem(mine.where.file, mine.where.line,
                      f"{said}; a draft cannot change a base flow, whatever the rule's "
                      "condition: use a new intent (or make the condition a form of your own, "
                      "active_loop: <your form>)")


def _rewrites(draft: ParsedFile, base: Definitions) -> Iterable[Problem]:
    """Synonyms that would rewrite values of the base's entities: Rasa's EntitySynonymMapper
    replaces any entity's value that equals a synonym's text (lower-cased), whichever entity
    it is, so "1001" -> "1003" makes every order number 1001 another one. Values of the base's
    entities are what its regexes match (as RegexEntityExtractor: whole, ignoring case) and
    what its lookup tables and annotated examples list."""
    patterns = [(entity, compiled, where) for entity, found in base.patterns.items()
                for compiled, where in _compiled(tuple(found))]

    def base_value(text: str) -> tuple[str, str] | None:
        for entity, compiled, where in patterns:
            if compiled.fullmatch(text.strip()):
                return entity, f"it matches the base's pattern for {entity}, {where}"
        for entity, values in base.values.items():
            if text.strip().lower() in values:
                return entity, f"the base lists it as {entity}, {values[text.strip().lower()]}"
        return None

    told: set[Where] = set()  # a value is reported once, where it is written
    for synonym in draft.defs.synonyms:
        text, value, entity, where = synonym.text, synonym.value, synonym.entity, synonym.where
        if entity is not None and entity in base.entities:
            yield Problem(where.file, where.line,
                          f"[{text}]({entity}:{value}) gives the base's entity '{entity}' the "
                          f"synonym '{value}': Rasa's EntitySynonymMapper would turn every "
                          f"'{text}' found into '{value}', also in the base's flows; "
                          f"{ENTITIES_STAY}: annotate it as [{text}]({entity})")
            continue
        named = (f"synonym '{value}'" if entity is None
                 else f"the synonym [{text}]({entity}:{value})")
        for of_value, subject, at in ((False, text, where),
                                      (True, value, synonym.value_where)):
            found = base_value(subject)
            if found is None or (of_value and at in told):
                continue
            told.add(at)
            base_entity, why = found
            change = (f"Rasa's EntitySynonymMapper would turn '{text}' into it, a value that "
                      f"reads as {base_entity}" if of_value else
                      f"Rasa's EntitySynonymMapper would turn it into '{value}' wherever it is "
                      "found")
            yield Problem(at.file, at.line,
                          f"{named}: '{subject}' can be a value of the base's entity "
                          f"'{base_entity}' ({why}), and {change}, also in the base's flows; "
                          f"{ENTITIES_STAY}: keep synonyms to values of your own entities")
            break


def _taken_values(draft: ParsedFile, base: Definitions, marked: set[str],
                  extraction: RegexExtraction | None) -> Iterable[Problem]:
    """A regex or lookup of the shop's own entity whose pattern also matches, in the base's
    examples, a value they mark as one of the base's entities (a regex `\\d{4}` for a frame
    code matches the order number 1001 of "where is order [1001](order_number)").

    An error when Rasa's RegexEntityExtractor (config.yml) would extract the entity by it: it
    does so for every match in every message, whatever the intent, for entities some NLU
    example marks, with regexes (use_regexes) and lookup tables (use_lookup_tables). Such a
    message then carries the draft's entity beside the base's, and the base's rules that start
    with an intent and that entity alone (RulePolicy compares a turn's entities as a whole)
    stop applying: "1001" typed out of the blue no longer starts the order status form. The
    base example is named so the designer sees which value would be taken.

    A warning when the extractor would not use it: a regex or lookup of an entity no example
    marks, or a lookup when the extractor reads no lookup tables (config.yml today), is only
    a hint for RegexFeaturizer; it takes nothing from the base now, but the pattern fires on
    the base's values too (and an example marking the entity later makes a regex an error).

    Compared with the base's annotated examples, as Rasa would read them (annotations reduced
    to their text, the extractor's case sensitivity and lookups' word boundaries), and not with
    the base's own regexes: whether two patterns can match the same text is not decidable in
    general, and the values the base's flows are built on are in its examples."""
    flags = 0 if extraction is not None and extraction.case_sensitive else re.IGNORECASE
    own = [(name, written) for name, written in draft.defs.patterns.items()
           if name not in base.entities and name not in base.regexes
           and name not in base.lookups]
    candidates: list[tuple[str, str, Where, re.Pattern[str], bool]] = []
    for name, written in own:
        for pattern, where in written:
            try:  # ^ and $ at each example's ends in the joined text (below)
                compiled = re.compile(pattern, flags | re.MULTILINE)
            except re.error:
                continue  # reported where it is written (reader.py)
            candidates.append(("regex", name, where, compiled,
                               extraction is not None and extraction.regexes))
    bound = r"\b" if extraction is None or extraction.word_boundaries else ""
    for name, entries in draft.defs.listed.items():
        if name in base.entities or name in base.regexes or name in base.lookups:
            continue
        for entry, where in entries:
            candidates.append(("lookup", name, where, re.compile(
                               f"{bound}{re.escape(entry)}{bound}", flags | re.MULTILINE),
                               extraction is not None and extraction.lookups))
    # Most patterns match no base example at all: one search over the examples joined by
    # newlines says so, when the pattern behaves there as on each example alone
    # (`_alike_joined`). A 500 KB draft of 27,000 regexes: 4.7 s one example at a time, 0.7 s.
    joined = "\n".join(sorted({value.example for value in base.annotated}))
    for noun, name, where, compiled, read in candidates:
        if _alike_joined(compiled.pattern) and compiled.search(joined) is None:
            continue
        compiled = re.compile(compiled.pattern, compiled.flags & ~re.MULTILINE)
        taken = [(value, hit) for value in base.annotated if value.entity != name
                 for hit in compiled.finditer(value.example)
                 if hit.end() > hit.start() and hit.start() < value.end
                 and hit.end() > value.start][:1]
        if not taken:
            continue
        value, hit = taken[0]
        shown = (f"{noun} '{name}' also matches '{hit.group()}' in the base's example "
                 f"\"{value.example}\" ({value.where}), which marks '{value.text}' as "
                 f"{value.entity}")
        if read and name in marked:
            yield Problem(where.file, where.line,
                          f"{shown}: Rasa's RegexEntityExtractor would find {name} there too, "
                          f"so such a message would carry {name} beside {value.entity}"
                          f"{_rule_expecting(value.entity, base)}; {ENTITIES_STAY}: make "
                          "the pattern match only your own values (a word or prefix they come "
                          "with, anchors)")
        else:
            why = (f"no example marks {name}, so Rasa's RegexEntityExtractor does not "
                   "extract it by this pattern" if name not in marked else
                   "config.yml's RegexEntityExtractor reads no lookup tables"
                   if noun == "lookup" else "config.yml's RegexEntityExtractor reads no "
                   "regexes")
            yield Problem(where.file, where.line,
                          f"{shown}: today it takes nothing from {value.entity} ({why}; it "
                          f"is a hint for recognising intents), but once Rasa extracts {name} "
                          f"by it, such a message would carry {name} beside {value.entity}; "
                          "better match only your own values", "warning")


# What can match an example alone but not the same example between newlines: anchors at the
# text's ends, a newline itself, lookarounds that "nothing" satisfies and a newline may not.
UNLIKE_JOINED = re.compile(r"\\[AZzn]|\(\?<?!|\(\?[a-zA-Z]*s")


def _alike_joined(pattern: str) -> bool:
    """Whether a pattern that matches none of the examples joined by newlines (with ^ and $
    at each line) matches none of them alone either: with `.` not crossing a newline, `\\b`
    and `^`/`$` seeing a newline as a text's end, only what UNLIKE_JOINED finds tells them
    apart (a match across two examples only makes the exact, per-example search run)."""
    return UNLIKE_JOINED.search(pattern) is None


def _rule_expecting(entity: str, base: Definitions) -> str:
    for (intent, entities), (name, where, _) in sorted(base.starts.items(),
                                                       key=lambda item: item[1][1].line):
        if entity in entities:
            return (f", and the base's rule '{name}' ({where}), which answers {intent} with "
                    f"{', '.join(sorted(entities))} alone, would no longer apply")
    return ""


@functools.lru_cache(maxsize=64)
def _compiled(patterns: tuple[tuple[str, Where], ...]) -> list[tuple[re.Pattern[str], Where]]:
    compiled = []
    for pattern, where in patterns:
        try:  # RegexEntityExtractor's default: case_sensitive false
            compiled.append((re.compile(pattern, re.IGNORECASE), where))
        except re.error:
            continue
    return compiled


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
        elif ref.what == "placeholder":
            message = _placeholder(ref, known)
        elif ref.what == "payload_intent" and name not in known.intents \
                and name not in DEFAULT_INTENTS:
            message = (f"response '{ref.of}': a button's payload /{name} names no intent of "
                       f"the base or your drafts{_like(name, known.intents)}, so Rasa would "
                       f"read '/{name}' as words the visitor typed; use an intent that exists "
                       "(GET /api/v1/training/base lists the base's) or list it under intents "
                       "in a domain draft")
        elif ref.what == "payload_entity" and name not in known.entities:
            message = (f"response '{ref.of}': a button's payload sets entity '{name}', which is "
                       f"not defined{_like(name, known.entities)}, so Rasa would drop it; list "
                       "it under entities in a domain draft")
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


def _placeholder(ref: Ref, known: Definitions) -> str | None:
    """A response's `{name}`: the renderer fills in slots (tenants/texts.py; a draft's own
    response gets no arguments from an action, which only the base's actions pass) and leaves
    any other name as written, so the visitor would read "{ordr_number}"."""
    name = ref.name
    if name in INTERNAL_SLOTS:
        return (f"response '{ref.of}': {{{name}}} is a slot the bot keeps for its own "
                "bookkeeping, not something to tell a visitor; use another slot or write the "
                "words out")
    if name in known.slots or name in DEFAULT_SLOTS:
        return None
    usable = sorted(set(known.slots) - INTERNAL_SLOTS)
    return (f"response '{ref.of}': {{{name}}} names no slot{_like(name, usable, braces=True)}, "
            f"so the bot would say '{{{name}}}' as written; a placeholder is a slot of the base "
            "or of your domain drafts (write a literal brace as {{ or }})")


def _like(name: str, known: Iterable[str], braces: bool = False) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if not close:
        return ""
    return f" (did you mean {{{close[0]}}}?)" if braces else f" (did you mean '{close[0]}'?)"


def _without_examples(draft: ParsedFile, known: Definitions) -> Iterable[Problem]:
    for intent, where in draft.defs.intents.items():
        if intent not in known.examples and intent not in DEFAULT_INTENTS:
            yield Problem(where.file, where.line, f"intent '{intent}' has no examples: give "
                                                  "it some in an nlu draft")


class RasaChecks(Protocol):
    """Who runs Rasa's own checks: admin_api/workshop.py `WorkshopClient` (raises
    `WorkshopUnavailable` when it cannot)."""

    async def validate(self, files: Mapping[str, str]) -> list[Problem]: ...


@dataclass(frozen=True)
class Checked:
    problems: list[Problem]  # errors: the drafts cannot train as they are
    rasa_checked: bool  # false: our checks found YAML syntax errors, Rasa's were not asked
    warnings: list[Problem] = field(default_factory=list)  # worth reading, never blocking


SYNTAX = ("YAML syntax error", "YAML error")


async def rasa_problems(drafts: Sequence[tuple[str, str, str]],
                        rasa: RasaChecks) -> list[Problem]:
    """Rasa's own checks (`rasa data validate`) of the drafts over the base, in the workshop:
    its errors and its warnings (`severity`)."""
    files = {f"{kind}/{name}.yml": content for kind, name, content in drafts}
    if not files:
        return []
    return [Problem(p.file, p.line, f"Rasa: {p.message}", p.severity)
            for p in await rasa.validate(files)]


def validate(drafts: Sequence[tuple[str, str, str]], base: Definitions) -> list[Problem]:
    """Our checks' errors about the shop's drafts, (kind, name, content) each, over the base
    (what a PUT answers; `validate_all` also gives our warnings)."""
    return [p for p in _ours(drafts, base) if p.severity == "error"]


def _ours(drafts: Sequence[tuple[str, str, str]], base: Definitions) -> list[Problem]:
    parsed = [parse(f"{kind}/{name}.yml", kind, content) for kind, name, content in drafts]
    return merge(our_problems(parsed, base))


async def validate_all(drafts: Sequence[tuple[str, str, str]], base: Definitions,
                       rasa: RasaChecks) -> Checked:
    """Ours, then Rasa's unless ours found YAML syntax errors; merged, errors and warnings."""
    ours = await asyncio.to_thread(_ours, drafts, base)
    errors = [p for p in ours if p.severity == "error"]
    warned = [p for p in ours if p.severity == "warning"]
    if any(p.message.startswith(SYNTAX) for p in errors):
        return Checked(errors, rasa_checked=False, warnings=warned)
    theirs = await rasa_problems(drafts, rasa)
    return Checked(merge(errors, [p for p in theirs if p.severity == "error"]),
                   rasa_checked=True,
                   warnings=merge(warned, [p for p in theirs if p.severity == "warning"]))


def merge(*groups: Iterable[Problem]) -> list[Problem]:
    """One list, each finding once (the same message at the same place), in order."""
    merged: dict[tuple[str, int, str], Problem] = {}
    for problem in (p for group in groups for p in group):
        merged.setdefault((problem.file, problem.line, problem.message), problem)
    return sorted(merged.values(), key=lambda p: (p.file, p.line, p.message))
