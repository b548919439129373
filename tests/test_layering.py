"""The packages' layering (DESIGN.md, Packages): each imports only the floors below it.

    core ← tenants ← knowledge ← actions        core ← tenants ← connectors
    core ← tenants ← knowledge ← billing ← actions, connectors, admin_api
    bot (Rasa's interpreter) ← core.settings, core.logs, core.sqlite, core.metrics, core.rasa_http,
                               core.heap, core.asking, core.minilm

Nothing in the product imports the development tools, the benchmarks or the tests. A
package's `__main__` module is an entry point: it wires products together (the tenants CLI
checks channel credentials with the channel registry), so it may import any product package.
Imports inside functions count as much as those at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("core", "tenants", "knowledge", "billing", "actions", "connectors", "admin_api",
           "bot", "migrations")
OURS = (*PRODUCT, "devtools", "bench", "tests")
MAY_IMPORT = {
    "core": set(),
    "tenants": {"core"},
    "knowledge": {"core", "tenants"},
    "billing": {"core", "tenants", "knowledge"},
    "actions": {"core", "tenants", "knowledge", "billing"},
    "connectors": {"core", "tenants", "billing"},
    "admin_api": {"core", "tenants", "knowledge", "billing", "actions", "connectors"},
    "migrations": {"core", "tenants", "knowledge", "billing", "actions", "admin_api"},  # tables
    "bot": {"core"},
}


def imports_of(path: Path) -> set[str]:
    """Dotted names of our modules that `path` imports (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in OURS}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", [p for p in PRODUCT if (ROOT / p).is_dir()])
def test_each_package_imports_only_the_floors_below_it(package: str) -> None:
    wrong = []
    for path in modules(package):
        entry_point = path.name == "__main__.py"
        allowed = set(PRODUCT) if entry_point else MAY_IMPORT[package] | {package}
        for name in sorted(imports_of(path)):
            if name.split(".")[0] not in allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "imports against the layering (DESIGN.md, Packages):\n" + "\n".join(wrong)


def test_rasas_interpreter_reads_only_our_settings() -> None:
    """bot/ runs in Rasa's Python 3.10 with Rasa's old libraries: of ours, only the
    standard-library-only core.settings and core.logs, core.sqlite (SQLAlchemy's `event`
    API, the same in Rasa's 1.4 as in our 2.0), core.metrics (prometheus-client, pinned in
    both lock files), core.rasa_http (PyJWT, in both: the JWTs one side mints and the other
    checks), the standard-library-only core.heap and core.asking, and core.minilm (numpy, onnx,
    onnxruntime, tokenizers and safetensors, in both lock files) may be imported there."""
    allowed = {"core.settings", "core.sqlite", "core.logs", "core.metrics", "core.rasa_http",
               "core.heap", "core.asking", "core.minilm"}
    for path in modules("bot"):
        assert {n for n in imports_of(path) if not n.startswith("bot")} <= allowed, path


def test_the_floor_modules_exist_as_documented() -> None:
    for package in ("core", "tenants", "knowledge", "actions", "connectors", "devtools"):
        assert (ROOT / package / "__init__.py").is_file(), package
