"""A shop's drafts laid out over the base data as a Rasa project on disk, the one shape
Rasa's checks (bot/rasa_checks.py), training (bot/train_shop.py) and the evaluation of a
trained version (bot/evaluate_shop.py) read.

    <tmp>/domain/base/*.yml        copies of bot/domain/*.yml
    <tmp>/domain/drafts/<n>.yml    the shop's domain drafts
    <tmp>/data/<kind>/<n>.yml      its NLU, rules and stories drafts: training data
    <tmp>/tests/test_<n>.yml       its test stories, outside data/: never trained on

Test stories are held out of training, the base's (data/tests) as much as a shop's: Rasa's
importer reads every `test_*.yml` under a training path as stories, and the `user:` texts of
stories become NLU training examples (rasa/shared/importers/importer.py `E2EImporter`), so a
test read by training passes by construction (a nonsense sentence in a test story was learned
as its intent). Training reads the base's training folders where they are
(`base_training_paths`: data/nlu, data/rules and data/stories when it exists, as `make train`
names them) and <tmp>/data; the tests are only run (`conversation_tests`). The domain is copied
because Rasa takes one domain path, a directory whose files it merges.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from core.settings import ROOT

TRAINING_KINDS = ("nlu", "rules", "stories")  # data/<kind>: what models learn from
TESTS = "tests"  # data/tests: the base's test stories, held out


def lay_out(tmp: Path, drafts: Mapping[str, str], root: Path = ROOT) -> dict[str, str]:
    """Writes the project under `tmp`; absolute path -> how people name the file
    ("bot/domain/intents.yml", "nlu/bikes.yml")."""
    paths: dict[str, str] = {}
    (tmp / "domain" / "base").mkdir(parents=True)
    for source in sorted((root / "bot" / "domain").glob("*.yml")):
        copy = tmp / "domain" / "base" / source.name
        shutil.copyfile(source, copy)
        paths[str(copy)] = source.relative_to(root).as_posix()
    for source in sorted((root / "data").rglob("*.yml")):
        paths[str(source)] = source.relative_to(root).as_posix()
    for name, content in drafts.items():
        target = draft_path(tmp, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        paths[str(target)] = name
    (tmp / "data").mkdir(exist_ok=True)
    return paths


def draft_path(tmp: Path, name: str) -> Path:
    """Where lay_out writes the draft `name` ("tests/sizes.yml")."""
    kind, stem = name[:-4].split("/", 1)
    if kind == "domain":
        return tmp / "domain" / "drafts" / f"{stem}.yml"
    if kind == TESTS:  # Rasa recognises test stories by the prefix (rasa test reads them)
        return tmp / TESTS / f"test_{stem}.yml"
    return tmp / "data" / kind / f"{stem}.yml"


def domain_path(tmp: Path) -> Path:
    return tmp / "domain"


def base_training_paths(root: Path = ROOT) -> list[str]:
    """The base's training data: data/<kind> for the training kinds the repository has
    (never data/tests)."""
    return [str(root / "data" / kind) for kind in TRAINING_KINDS
            if (root / "data" / kind).is_dir()]


def training_paths(tmp: Path, root: Path = ROOT) -> list[str]:
    """What a shop model trains on: the base's training data and the drafts' (no tests)."""
    return [*base_training_paths(root), str(tmp / "data")]


def conversation_tests(tmp: Path, drafts: Mapping[str, str], root: Path = ROOT
               ) -> list[tuple[Path, str]]:
    """(path, how people name it) of every test story file: the base's data/tests, then the
    shop's test drafts as lay_out wrote them under `tmp`."""
    base = [(path, path.relative_to(root).as_posix())
            for path in sorted((root / "data" / TESTS).glob("*.yml"))]
    own = [(draft_path(tmp, name), name) for name in sorted(drafts)
           if name.startswith(f"{TESTS}/")]
    return base + own
