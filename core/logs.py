"""Structured (JSON lines) logging for our processes.

Secrets never reach a log line: we log ids and kinds, not tokens, and `redact` masks anything
that looks like a card number or a credential in free text before it is logged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_CARD = re.compile(r"\b(?:\d[ -]?){12,15}(\d{4})\b")
_SECRET_KV = re.compile(r"(?i)\b(token|secret|password|api[_-]?key|authorization)(\s*[=:]\s*)\S+")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    text = _CARD.sub(lambda m: "**** **** **** " + m.group(1), text)
    return _SECRET_KV.sub(lambda m: m.group(1) + m.group(2) + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that narrate their own start-up at INFO/DEBUG (FAISS's CPU-feature probing,
    # bm25s's index building): only their warnings are worth a line.
    for chatty in ("faiss.loader", "bm25s", "sentence_transformers"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
