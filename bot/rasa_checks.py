"""Rasa's own checks of a shop's drafts, layered over the base data, as `rasa data validate`
runs them (rasa/cli/utils.py `validate_files`); runs in Rasa's interpreter (bot/workshop.py).

The base is the repository's data/, bot/domain/ and config.yml. Each check writes the drafts
into a temporary directory beside copies of the base's domain files (bot/project.py), loads
them with `TrainingDataImporter.load_from_config` as training reads them (test stories are not
training data, so not part of these checks: a test may expect what the bot does not do yet)
and runs the `Validator`'s checks: the domain's validity, actions and forms used in stories
and rules, form slots, slot mappings, intents and utterances against the NLU data, examples
labelled with two intents, and story/rule structure conflicts. Before that, every draft goes
through Rasa's YAML schema for its kind (the same `validate_yaml_schema` the readers call,
whose errors carry the YAML path, hence a line); a set with schema or syntax errors stops
there (`complete` is false): Rasa's loaders raise at the first such file, and the checks
across files would only repeat them.

What Rasa reports comes as Python warnings (`rasa.shared.utils.io.raise_warning`), log records
of `rasa.*` (story conflicts) and exceptions. Each becomes a `Finding` on the draft and line it
is about (`_attribute`): the draft and line Rasa gives (a schema or syntax error), or the draft
a message names as a file; otherwise what the message is about decides (`ABOUT`, with the
drafts' definitions and uses from bot/draft_places.py): a definition Rasa finds unused or
without examples is where a domain draft defines it (not a test story or another draft that
mentions the name: "The intent 'ask_beta' is not used in any story or rule" belongs to the
domain draft listing ask_beta), a name Rasa cannot find is where a step uses it, a story
conflict is where the rules or stories it names start. A message that names nothing of the
drafts gets no file and line 0 (`NO_FILE`, `NO_LINE`: about the drafts as a whole) rather than
a wrong place; one whose draft is known but not its line, that draft and line 0. The base's own
warnings (the base run, computed once) are not the designer's: a message the base alone
produces is dropped, and the base's warnings are logged once at start-up instead (47 today:
mostly responses that only custom actions say, "not used in any story or rule").

Errors and warnings: Rasa itself never fails a validation on three of its messages, even with
`--fail-on-warnings` (rasa/validator.py sets `everything_is_alright = ignore_warnings or
everything_is_alright` for them): an intent or a response "not used in any story or rule", and
an intent of the domain without NLU examples. Those are `warnings` here, never `errors`, with a
sentence on what they mean for the bot; a response a form says itself (`utter_ask_<slot>`,
`utter_ask_<form>_<slot>` for a slot the form requests) is not even that: it is how a form
asks. Everything else Rasa says (schema errors, unknown intents and actions, story/rule
conflicts, examples with two intents, slot mappings...) is an error.

Rasa's structlog events while loading data are left out: the one there is (a story's
`user:` text that does not parse) is about a visitor message's form, which the YAML schema
and the checks above already cover for drafts.

Not thread-safe (warnings and log capture are process-wide): the workshop runs one check at a
time on one worker thread.
"""

from __future__ import annotations

import functools
import logging
import re
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.draft_places import Place, Places, places
from bot.project import domain_path, lay_out, training_paths
from core.settings import ROOT

log = logging.getLogger(__name__)

KINDS = ("nlu", "rules", "stories", "domain", "tests")
DRAFT_FILE = re.compile(r"^(nlu|rules|stories|domain|tests)/([a-z0-9][a-z0-9_-]{0,63})\.yml$")
QUOTED = re.compile(r"'([^'\n]{1,200})'")
REMEMBERED = 16  # reports kept by Checker, the latest
# Python's own and the libraries' notices while Rasa loads, not findings about the data.
IGNORED_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                    ResourceWarning)
# The messages Rasa never fails a validation on (see the module doc), with what they mean here.
UNUSED_INTENT = re.compile(r"^The intent '([^']+)' is not used in any story or rule\.")
UNUSED_RESPONSE = re.compile(r"^The utterance '([^']+)' is not used in any story or rule\.")
WITHOUT_EXAMPLES = re.compile(r"^The intent '([^']+)' is listed in the domain file, but is not "
                              r"found in the NLU training data\.")
WARNINGS = (
    (UNUSED_INTENT, "The bot recognises it, but until a rule starts with it, a message "
                    "recognised as it gets the fallback answer."),
    (UNUSED_RESPONSE, "Nothing will say it until a rule does (a form says its own "
                      "utter_ask_<slot> responses)."),
    (WITHOUT_EXAMPLES, "The bot cannot recognise it until an nlu draft gives it examples."),
)
# What each of Rasa's messages is about, and so where it belongs: where the name it quotes
# (group 1) is defined ("defined", in the kinds of definition given, first found first), used
# ("used": a step, in the rule or story of group 2 when the message names one), or an NLU
# example with that text ("example"). rasa/validator.py and rasa/shared/core/domain.py word
# them; a message none of these fits goes to the first definition, else use, of a name it
# quotes; story conflicts (CONFLICT) to the rules and stories they name.
ABOUT: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    (WITHOUT_EXAMPLES, "defined", ("intent",)),
    (UNUSED_INTENT, "defined", ("intent",)),
    (UNUSED_RESPONSE, "defined", ("response", "action")),
    (re.compile(r"^There is a message in the training data labeled with intent '([^']+)'"),
     "defined", ("nlu_intent",)),
    (re.compile(r"^The intent '([^']+)' is used in your stories"), "used", ("intent",)),
    (re.compile(r"^The action '([^']+)' is used in the stories, but is not a valid"), "used",
     ("action",)),
    (re.compile(r"^The (?:form|action) '([^']+)' is used in the '([^']*)' block"), "used",
     ("action", "form")),
    (re.compile(r"^The form slot '[^']+' in form '([^']+)'"), "defined", ("form",)),
    (re.compile(r"^Slot '([^']+)' has a mapping condition"), "defined", ("slot",)),
    (re.compile(r"^Action '([^']+)' is listed as a response action"), "defined", ("action",)),
    (re.compile(r"^Entities: .* for intent '([^']+)'\."), "defined", ("intent",)),
    (re.compile(r"^The example '(.+)' was found labeled with multiple different intents"),
     "example", ()),
)
CONFLICT = re.compile(r"^Story structure conflict (?:after \w+ '[^']*'|at the beginning of "
                      r"stories):")
ALL_KINDS = ("intent", "response", "action", "form", "slot", "entity", "rule", "story",
             "nlu_intent", "synonym", "regex", "lookup")
USES = ("intent", "action", "form", "slot")
# A finding no draft can be named for (Rasa could not load the data, and said nothing that
# names a draft or a name of one): the drafts as a whole, rather than a wrong file or line.
NO_FILE = ""
NO_LINE = 0


@dataclass(frozen=True)
class Finding:
    file: str  # "rules/bikes.yml"
    line: int  # 1-based
    message: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    errors: list[Finding]
    complete: bool  # false: schema or syntax errors stopped the checks across files
    warnings: list[Finding] = field(default_factory=list)  # worth reading, never blocking


@dataclass(frozen=True)
class _Raw:
    """One thing Rasa said, with the file and line when it said them."""

    message: str
    path: str | None = None
    line: int | None = None


class _Collect(logging.Handler):
    def __init__(self, into: list[_Raw]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(_Raw(record.getMessage()))


def parse_files(value: Any) -> dict[str, str]:
    """The request's `files`, checked: {"<kind>/<name>.yml": "<yaml>"}; ValueError says why."""
    if not isinstance(value, dict):
        raise ValueError('"files" must be an object: {"<kind>/<name>.yml": "<yaml>", ...}')
    for name, content in value.items():
        if not DRAFT_FILE.match(name):
            raise ValueError(f"{name!r}: a file is <kind>/<name>.yml with kind one of "
                             f"{', '.join(KINDS)} and a name of a-z, 0-9, _ and -")
        if not isinstance(content, str):
            raise ValueError(f"{name!r}: the content must be a string of YAML")
    return dict(value)


class Checker:
    """Rasa's checks over `root`'s base (loaded lazily: the first call pays Rasa's import)."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self._base: frozenset[str] | None = None
        # The latest reports by drafts: a designer validates, then trains the same drafts
        # (the admin service validates again before it queues a training), 1.5-4 s each.
        self._reports: OrderedDict[tuple[tuple[str, str], ...], Report] = OrderedDict()

    def base_warnings(self) -> list[str]:
        """What Rasa says about the base alone (logged once, never reported to designers)."""
        if self._base is None:
            found, paths, _ = self._layered({})
            self._base = frozenset(_label(raw.message, paths) for raw in found)
            if self._base:
                log.warning("Rasa's checks warn about the base data itself (%d warnings; "
                            "not reported to designers): %s", len(self._base),
                            " | ".join(sorted(self._base)[:10]))
        return sorted(self._base)

    def check(self, files: Mapping[str, str]) -> Report:
        """Rasa's findings about `files` layered over the base (the same drafts are checked
        once: the base does not change while this process runs)."""
        key = tuple(sorted(files.items()))
        if key in self._reports:
            self._reports.move_to_end(key)
            return self._reports[key]
        report = self._check(dict(key))
        self._reports[key] = report
        if len(self._reports) > REMEMBERED:
            self._reports.popitem(last=False)
        return report

    def _check(self, drafts: dict[str, str]) -> Report:
        if not drafts:
            return Report([], True)
        base = set(self.base_warnings())
        schema = [finding for name, content in drafts.items()
                  for finding in _schema_findings(name, content)]
        if schema:
            return Report(_unique(schema), False)
        errors, warned = [], []
        found, paths, asked = self._layered(drafts)
        where = functools.cache(lambda: places(drafts))
        for raw in found:
            message = _label(raw.message, paths)
            if message in base:
                continue
            warning = _warning(message, asked)
            if warning is None:
                errors.append(_attribute(raw, message, drafts, paths, where))
            elif warning:
                warned.append(_attribute(raw, warning, drafts, paths, where))
        return Report(_unique(errors), True, _unique(warned))

    # --- running Rasa ---

    def _layered(self, drafts: Mapping[str, str]
                 ) -> tuple[list[_Raw], dict[str, str], frozenset[str]]:
        """What Rasa says, the paths' names, and the responses forms ask with."""
        with tempfile.TemporaryDirectory(prefix="switchboard-workshop-") as tmp:
            where = Path(tmp).resolve()
            paths = lay_out(where, drafts, self.root)
            found, asked = self._validate(where)
            return found, paths, asked

    def _validate(self, tmp: Path) -> tuple[list[_Raw], frozenset[str]]:
        from rasa.shared.exceptions import RasaException, YamlException
        from rasa.validator import Validator

        found: list[_Raw] = []
        asked: set[str] = set()
        handler = _Collect(found)
        rasa_log = logging.getLogger("rasa")
        rasa_log.addHandler(handler)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    importer = _importer(self.root, tmp)
                    if importer.get_domain().is_empty():
                        found.append(_Raw("Encountered empty domain during validation."))
                    else:
                        asked.update(_asked_by_forms(importer.get_domain()))
                        validator = Validator.from_importer(importer)
                        # rasa/cli/utils.py validate_files, in its order
                        validator.verify_domain_validity()
                        validator.verify_actions_in_stories_rules()
                        validator.verify_forms_in_stories_rules()
                        validator.verify_form_slots()
                        validator.verify_slot_mappings()
                        validator.verify_nlu(True)
                        validator.verify_story_structure(True)
                except YamlException as exc:
                    found.extend(_exception_findings(exc))
                except (RasaException, ValueError, KeyError, TypeError) as exc:
                    found.append(_Raw(f"Rasa could not load the data: {exc}"))
        finally:
            rasa_log.removeHandler(handler)
        found.extend(_Raw(str(w.message)) for w in caught
                     if not issubclass(w.category, IGNORED_WARNINGS))
        return found, frozenset(asked)


def _importer(root: Path, tmp: Path) -> Any:
    """The importer `TrainingDataImporter.load_from_config` makes for config.yml (which names
    no importers: E2EImporter(ResponsesSyncImporter(CombinedDataImporter([RasaFileImporter]))),
    but one that reads the NLU files once and the domain files once.

    Rasa 3.6 reads them twice: ResponsesSyncImporter asks the combined importer for the NLU
    data as `get_nlu_data()` in `get_domain` and as `get_nlu_data("en")` in `get_nlu_data`,
    two keys of Rasa's `cached_method`, so every NLU file was read, schema-checked, hashed and
    merged twice; and RasaFileImporter.get_domain, not cached, reads the domain files again for
    the stories; and the combined importer merged its one importer's data into an empty
    TrainingData (a deep copy and a hash of every example). With 2 MB of NLU drafts (4 files
    of 500 KB, 1,632 new intents with 20 examples each, a domain listing them) a check took
    16.4-18.2 s of CPU here, 27-30 s on the clock while other work shared the 2 cores: the
    admin service's 30 s timeout. Reading each once: 10.0-10.3 s of CPU (11-15 s on the
    clock). The rest is Rasa's: its YAML schema checks (ruamel, in Python; 1.7 s of them our
    schema pass before loading) and the deep copies and hashes of TrainingData.merge.
    """
    from rasa.shared.importers.importer import (
        CombinedDataImporter,
        E2EImporter,
        ResponsesSyncImporter,
        TrainingDataImporter,
    )
    from rasa.shared.importers.rasa import RasaFileImporter
    from rasa.shared.utils.common import cached_method
    from rasa.shared.utils.io import read_config_file

    config, domain = str(root / "config.yml"), str(domain_path(tmp))
    if read_config_file(config).get("importers"):  # importers of its own: Rasa's way
        return TrainingDataImporter.load_from_config(
            config_path=config, domain_path=domain, training_data_paths=training_paths(tmp, root))

    class ReadsNluOnce(CombinedDataImporter):
        def get_nlu_data(self, language: str | None = "en") -> Any:
            return self._nlu_data(language)  # one cache key for () and ("en",)

        @cached_method
        def _nlu_data(self, language: str | None) -> Any:
            # One importer: its data as it is, not merged into an empty TrainingData (a deep
            # copy and a hash of every example; the importers above copy it anyway).
            (only,) = self._importers
            return only.get_nlu_data(language)

    class ReadsDomainOnce(RasaFileImporter):
        @cached_method
        def get_domain(self) -> Any:
            return super().get_domain()

    files = ReadsDomainOnce(config_file=config, domain_path=domain,
                            training_data_paths=training_paths(tmp, root))
    return E2EImporter(ResponsesSyncImporter(ReadsNluOnce([files])))


def _asked_by_forms(domain: Any) -> set[str]:
    """The responses Rasa's forms say to ask for their slots (rasa/core/actions/forms.py
    `_name_of_utterance`: utter_ask_<form>_<slot>, else utter_ask_<slot>)."""
    asked: set[str] = set()
    for form in domain.form_names:
        for slot in domain.required_slots_for_form(form):
            asked.update((f"utter_ask_{form}_{slot}", f"utter_ask_{slot}"))
    return asked


def _warning(message: str, asked: frozenset[str]) -> str | None:
    """None: an error; "": expected, nothing to say; otherwise the warning to show."""
    for pattern, meaning in WARNINGS:
        found = pattern.search(message)
        if found:
            if pattern is UNUSED_RESPONSE and found.group(1) in asked:
                return ""
            return f"{message} {meaning}"
    return None


def _label(message: str, paths: Mapping[str, str]) -> str:
    """The message with temporary and absolute paths replaced by the files' names."""
    for path in sorted(paths, key=len, reverse=True):
        message = message.replace(path, paths[path])
    return " ".join(message.split())


def _schema_findings(name: str, content: str) -> list[Finding]:
    """Rasa's YAML schema for the draft's kind (rasa/shared/utils/validation.py)."""
    from rasa.shared.constants import DOMAIN_SCHEMA_FILE
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import CORE_SCHEMA_FILE
    from rasa.shared.exceptions import YamlException
    from rasa.shared.nlu.training_data.formats.rasa_yaml import NLU_SCHEMA_FILE
    from rasa.shared.utils.validation import validate_yaml_schema

    kind = name.split("/", 1)[0]
    schema = {"domain": DOMAIN_SCHEMA_FILE, "nlu": NLU_SCHEMA_FILE}.get(kind, CORE_SCHEMA_FILE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_yaml_schema(content, schema)
    except YamlException as exc:
        return [Finding(name, raw.line or 1, raw.message) for raw in _exception_findings(exc)]
    return []


def _exception_findings(exc: Any) -> list[_Raw]:
    """A Rasa YAML exception as findings with lines: each schema error at its YAML path, or
    the syntax error's mark."""
    path = getattr(exc, "filename", None)
    errors = getattr(exc, "validation_errors", None)
    if errors:
        found = []
        for error in errors:
            line = _line_for_path(exc.content, str(error.path or ""))
            found.append(_Raw(f"Rasa's YAML schema: {error}", path, line))
        return found
    underlying = getattr(exc, "underlying_yaml_exception", None)
    mark = getattr(underlying, "problem_mark", None) or getattr(underlying, "context_mark", None)
    if underlying is not None:
        problem = getattr(underlying, "problem", None) or str(underlying)
        return [_Raw(f"YAML syntax error: {problem}", path,
                     int(mark.line) + 1 if mark is not None else None)]
    return [_Raw(f"Rasa could not read the file: {getattr(exc, 'message', exc)}", path)]


def _line_for_path(content: Any, path: str) -> int | None:
    """The line of the key or item at a YAML path ("/rules/0/steps") in ruamel's round-trip
    content: the deepest one with a line (scalars have none, their key has)."""
    line, node = None, content
    for part in (p for p in path.split("/") if p):
        try:
            marks: Any = getattr(node, "lc", None)  # ruamel's line/column of keys and items
            if isinstance(node, dict) and part in node:
                line = int(marks.key(part)[0]) + 1
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                line = int(marks.item(int(part))[0]) + 1
                node = node[int(part)]
            else:
                break
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    return line


def _attribute(raw: _Raw, message: str, drafts: Mapping[str, str],
               paths: Mapping[str, str], where: Callable[[], Places]) -> Finding:
    """The draft and line a message is about (see the module's docstring); `where` gives the
    drafts' definitions and uses, read at the first message that needs them."""
    named = _drafts_named(message, drafts)
    if raw.path is not None:
        label = paths.get(str(Path(raw.path).resolve())) or paths.get(raw.path)
        if label is not None and label in drafts:
            named = [label]
    if named:
        if raw.line is not None:
            return Finding(named[0], raw.line, message)
        place = _place(message, where(), only=named[0])
        return Finding(named[0], place.line if place is not None else NO_LINE, message)
    place = _place(message, where())
    if place is None:
        return Finding(NO_FILE, NO_LINE, message)
    return Finding(place.file, place.line, message)


def _drafts_named(message: str, drafts: Iterable[str]) -> list[str]:
    """The drafts a message names as files: "rules/smalltalk.yml", but not inside the base's
    "data/rules/smalltalk.yml"."""
    return [name for name in drafts
            if re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w.-])", message)]


def _place(message: str, places: Places, only: str | None = None) -> Place | None:
    """Where the thing the message is about is written: its definition or its use as ABOUT
    says for the message, else the first definition, then use, of a name it quotes."""
    def within(place: Place | None) -> Place | None:
        return place if place is not None and (only is None or place.file == only) else None

    conflict = CONFLICT.match(message)
    if conflict:  # the rules and stories in conflict, where they start
        for name in QUOTED.findall(message[conflict.end():]):
            for part in (name, *name.split(" > ")):
                found = within(places.definition(("rule", "story"), part))
                if found:
                    return found
        return None
    for pattern, site, kinds in ABOUT:
        found_about = pattern.search(message)
        if found_about is None:
            continue
        name = found_about.group(1)
        if site == "example":
            return next((p for p in places.examples.get(name, ()) if within(p)), None)
        if site == "defined":
            return within(places.definition(kinds, name))
        block = found_about.group(2) if pattern.groups > 1 else None
        return within(places.use(kinds, name, block)) or within(places.use(kinds, name)) \
            or within(places.definition(("rule", "story"), block or ""))
    for name in QUOTED.findall(message):
        found = within(places.definition(ALL_KINDS, name)) or within(places.use(USES, name))
        if found:
            return found
    return None


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    seen: dict[tuple[str, str], Finding] = {}
    for finding in findings:
        seen.setdefault((finding.file, finding.message), finding)
    return sorted(seen.values(), key=lambda f: (f.file, f.line, f.message))
