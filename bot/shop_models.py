"""Where shops' own models live and which version each shop uses: files under SHOP_MODELS_DIR,
written by the workshop (bot/workshop.py) and read by every bot runtime (bot/runtime.py).

    <dir>/<shop>/<version>.tar.gz    a trained model (Rasa's own archive)
    <dir>/active.json                {"shops": {"<shop>": "<version>", ...}}

A shop that is not in active.json uses the base model. Files, not a database: the runtime runs
in Rasa's interpreter, which never opens our tables (DESIGN.md), and the models themselves are
files the runtimes must share anyway (one volume in compose). The admin service keeps the
versions' records (who trained what, metrics) and asks the workshop to switch.

active.json is replaced whole (written beside it, then renamed), so a runtime that reads it
while the workshop writes sees the old or the new mapping, never half of one. Runtimes notice
a change by its inode, modification time and size (`Registry.signature`), checked every second.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

SHOP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
VERSION_ID = re.compile(r"^[0-9a-f]{32}$")
ACTIVE = "active.json"


def check_shop(shop: str) -> str:
    if not isinstance(shop, str) or not SHOP_ID.match(shop):
        raise ValueError("a shop id is 1-64 letters, digits, _ and -")
    return shop


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_ID.match(version):
        raise ValueError("a version id is 32 lowercase hexadecimal digits")
    return version


class Registry:
    """The shop models' directory: model files and the active mapping."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._write_lock = threading.Lock()  # one writer in this process at a time

    def model_file(self, shop: str, version: str) -> Path:
        return self.root / check_shop(shop) / f"{check_version(version)}.tar.gz"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def signature(self) -> tuple[int, int, int] | None:
        """Changes whenever active.json is replaced (a new file each time); None while there
        is none."""
        try:
            stat = (self.root / ACTIVE).stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def active(self) -> dict[str, str]:
        """Shop -> version for every shop that uses a model of its own; unreadable entries are
        logged and left out (that shop is served by the base model)."""
        try:
            raw = json.loads((self.root / ACTIVE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("shop models: %s unreadable (%s); every shop on the base model",
                      self.root / ACTIVE, exc)
            return {}
        shops = raw.get("shops") if isinstance(raw, dict) else None
        found: dict[str, str] = {}
        for shop, version in (shops or {}).items():
            if (isinstance(shop, str) and isinstance(version, str) and SHOP_ID.match(shop)
                    and VERSION_ID.match(version)):
                found[shop] = version
            else:
                log.error("shop models: entry %r -> %r in %s is not a shop and a version; "
                          "ignored", str(shop)[:80], str(version)[:80], ACTIVE)
        return found

    def set_active(self, shop: str, version: str | None) -> None:
        """Switch `shop` to `version` (None: back to the base model). The model file must
        exist (FileNotFoundError otherwise): a runtime must be able to load what is named."""
        check_shop(shop)
        if version is not None and not self.model_file(shop, version).is_file():
            raise FileNotFoundError(f"no model {version} for shop {shop}")
        with self._write_lock:
            shops = self.active()
            if version is None:
                shops.pop(shop, None)
            else:
                shops[shop] = version
            self.root.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=".active-", suffix=".json", dir=self.root)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump({"shops": dict(sorted(shops.items()))}, out, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.root / ACTIVE)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        log.info("shop models: shop %s now uses %s", shop, version or "the base model")
