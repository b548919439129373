"""A shop's drafts laid out over the base data as a Rasa project on disk, the one shape both
Rasa's checks (bot/rasa_checks.py) and training (bot/train_shop.py) read.

    <tmp>/domain/base/*.yml      copies of bot/domain/*.yml
    <tmp>/domain/drafts/<n>.yml  the shop's domain drafts
    <tmp>/data/<kind>/<n>.yml    its NLU, rules and stories drafts
    <tmp>/data/tests/test_<n>.yml  its test stories (Rasa recognises them by the prefix)

The base's training data is read where it is (`training_paths`: the repository's data/ and
<tmp>/data), as `make train` reads it (`--data data`), so a shop model learns exactly the base
plus the drafts. The domain is copied because Rasa takes one domain path, a directory whose
files it merges.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from core.settings import ROOT


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
        kind, stem = name[:-4].split("/", 1)
        if kind == "domain":
            target = tmp / "domain" / "drafts" / f"{stem}.yml"
        else:
            target = tmp / "data" / kind / (f"test_{stem}.yml" if kind == "tests"
                                            else f"{stem}.yml")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        paths[str(target)] = name
    (tmp / "data").mkdir(exist_ok=True)
    return paths


def domain_path(tmp: Path) -> Path:
    return tmp / "domain"


def training_paths(tmp: Path, root: Path = ROOT) -> list[str]:
    return [str(root / "data"), str(tmp / "data")]
