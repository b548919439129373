"""Every `type: ignore` in our code names its error code and says why, on the same line:

    value = thing.attr  # type: ignore[attr-defined]  # <why mypy is wrong here>

mypy (`ignore-without-code`, `warn_unused_ignores`) and ruff (PGH003) enforce the code and
that the ignore is still needed; only the reason is left to this test.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Not ours, or not code (the same folders ruff and mypy leave out).
SKIPPED = {"var", "models", "results", "node_modules"}
IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<codes>\[[^\]]*\])?(?P<rest>.*)$")
REASON = re.compile(r"^\s*#\s*\S")


def our_python_files() -> list[Path]:
    files: list[Path] = []
    for top in sorted(ROOT.iterdir()):
        if top.name.startswith(".") or top.name in SKIPPED:
            continue
        if top.is_dir():
            files.extend(sorted(top.rglob("*.py")))
        elif top.suffix == ".py":
            files.append(top)
    return files


def unexplained_ignores(source: str) -> list[tuple[int, str]]:
    """(line, comment) of each `type: ignore` comment lacking a code or a `# reason` after it.

    Comments only (tokenize), so the words in a string or docstring do not count."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        match = IGNORE.search(token.string)
        if match and (not match["codes"] or not REASON.match(match["rest"])):
            found.append((token.start[0], token.string))
    return found


def test_the_check_tells_explained_from_unexplained() -> None:
    source = (
        "a = 1  # type: ignore[misc]  # the stub is wrong about this\n"
        "b = 2  # type: ignore[misc]\n"
        "c = 3  # type: ignore\n"
        "d = 4  # type: ignore  # a reason but no code\n"
        "e = 5  # type: ignore[misc] no hash before the reason\n"
        "f = '# type: ignore[misc]'\n"
    )
    assert [line for line, _ in unexplained_ignores(source)] == [2, 3, 4, 5]


def test_every_type_ignore_names_its_code_and_why() -> None:
    files = our_python_files()
    assert any(f.parts[-2:] == ("tests", "test_type_ignores.py") for f in files)
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {comment}"
        for path in files
        for line, comment in unexplained_ignores(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, (
        "a `type: ignore` needs its error code and a reason on the same line, as in\n"
        "    x = y  # type: ignore[code]  # why\n" + "\n".join(offenders))
