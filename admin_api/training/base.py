"""The base training data every shop shares, as the repository has it: data/nlu, data/rules,
data/stories and data/tests (Rasa's training data and test stories) and bot/domain (the
domain). Read and parsed once per process (the files change with a deploy); drafts are checked
against what it defines (admin_api/training/checks.py), and against the dialogue policies
config.yml names (`policies`: whether stories are learned at all) and how its pipeline's
RegexEntityExtractor reads regexes and lookup tables (`regex_extraction`)."""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from admin_api.training.nodes import Definitions
from admin_api.training.reader import parse
from core.settings import ROOT

log = logging.getLogger(__name__)

# kind -> the folder of the base's files of that kind, relative to the repository
FOLDERS = {"nlu": "data/nlu", "rules": "data/rules", "stories": "data/stories",
           "tests": "data/tests", "domain": "bot/domain"}


@dataclass(frozen=True)
class BaseFile:
    kind: str
    name: str  # the file's name without .yml
    path: str  # relative to the repository: "data/nlu/orders.yml"
    size: int


@dataclass(frozen=True)
class BaseData:
    files: tuple[BaseFile, ...]
    defs: Definitions

    def file(self, kind: str, name: str) -> BaseFile | None:
        return next((f for f in self.files if f.kind == kind and f.name == name), None)

    def read(self, found: BaseFile, root: Path = ROOT) -> str:
        return (root / found.path).read_text(encoding="utf-8")


def read_base(root: Path = ROOT) -> BaseData:
    files: list[BaseFile] = []
    defs = Definitions()
    for kind, folder in FOLDERS.items():
        for path in sorted((root / folder).glob("*.yml")):
            relative = path.relative_to(root).as_posix()
            text = path.read_text(encoding="utf-8")
            parsed = parse(relative, kind, text, base=True)
            if parsed.problems:  # the base trains as it is; say so if our checks disagree
                log.warning("the base file %s does not pass our checks: %s", relative,
                            "; ".join(f"{p.line}: {p.message}" for p in parsed.problems[:5]))
            defs.merge(parsed.defs)
            files.append(BaseFile(kind, path.stem, relative, len(text.encode("utf-8"))))
    defs.refs.clear()  # the base's own references are Rasa's business, not the drafts'
    return BaseData(tuple(files), defs)


@functools.cache
def base_data() -> BaseData:
    return read_base()


@functools.cache
def base_digest(root: Path = ROOT) -> str:
    """One hash of what every shop's model trains from besides its drafts: the base's files
    and config.yml. The same drafts on another base (a deploy changed it) make another model."""
    digest = hashlib.sha256()
    for folder in FOLDERS.values():
        for path in sorted((root / folder).glob("*.yml")):
            digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
            digest.update(path.read_bytes() + b"\0")
    digest.update((root / "config.yml").read_bytes())
    return digest.hexdigest()


@functools.cache
def policies(root: Path = ROOT) -> tuple[str, ...]:
    """The names of the dialogue policies in config.yml ("RulePolicy", ...)."""
    config = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8")) or {}
    return tuple(str(policy.get("name")) for policy in config.get("policies") or []
                 if isinstance(policy, dict))


@dataclass(frozen=True)
class RegexExtraction:
    """How config.yml's RegexEntityExtractor extracts entities by pattern (Rasa's defaults,
    rasa/nlu/extractors/regex_entity_extractor.py, for what it does not set). It extracts
    only entities some NLU example marks (`use_only_entities`); a regex or lookup of another
    name is a feature for RegexFeaturizer, nothing more."""

    regexes: bool  # use_regexes
    lookups: bool  # use_lookup_tables
    case_sensitive: bool
    word_boundaries: bool  # a lookup entry matches as \bentry\b


@functools.cache
def regex_extraction(root: Path = ROOT) -> RegexExtraction | None:
    """config.yml's RegexEntityExtractor; None when its pipeline has none."""
    config = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8")) or {}
    for component in config.get("pipeline") or []:
        if isinstance(component, dict) and component.get("name") == "RegexEntityExtractor":
            return RegexExtraction(bool(component.get("use_regexes", True)),
                                   bool(component.get("use_lookup_tables", True)),
                                   bool(component.get("case_sensitive", False)),
                                   bool(component.get("use_word_boundaries", True)))
    return None
