"""Structured (JSON lines) logging for our processes, with no secrets and no visitor data in it.

Secrets never reach a log line: we log ids and kinds, not tokens, and `redact` masks anything
that looks like a card number or a credential in free text before it is logged.

Visitors' emails, phone numbers and message texts never reach a log line either (DESIGN.md,
style 14): sender ids hold them ("{tenant}:sms:+4915112345678"), so a sender id is logged as
`visitor(sender_id)`, a keyed hash that names one visitor across log lines and processes but
cannot be reversed or checked against a guessed number without the key (`Settings.log_key`).
Message texts are logged only through `message_text`, which shows their length unless
LOG_MESSAGE_TEXT says otherwise (debugging only). As a last line of defence the formatter
replaces anything shaped like an email address or an international phone number in a log
line, its fields and its traceback.

Standard library only, and Python 3.10: Rasa's interpreter imports it too (bot/serve.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import sys
import time
from typing import Any

from core import cards

_SECRET_KV = re.compile(r"(?i)\b(token|secret|password|api[_-]?key|authorization)(\s*[=:]\s*)\S+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# E.164 as Twilio sends it ("+4915112345678", "whatsapp:+49..."). A bare run of digits (Meta's
# wa_id) is left alone here: timestamps and provider ids look the same; `visitor` covers those.
_PHONE = re.compile(r"(?<![\w+])\+[1-9]\d{6,14}\b")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

# Until `configure` sets the deployment's key, pseudonyms are keyed with a random one: still
# unlinkable to the visitor, just not stable across processes.
_pseudonym_key = secrets.token_bytes(32)
_log_message_text = False


# At interpreter exit Python sets modules' globals to None, in no fixed order, while objects'
# __del__ still log (aiohttp's unclosed sessions in Rasa's process: "TypeError: 'NoneType'
# object is not callable" from `redact`, printed as "Exception ignored in ..."). Logging must
# not raise then, nor print what it could not mask: the record factory and the formatter hold
# what they call in closures and class attributes (which survive), and fall back to this line.
_WITHHELD = "[withheld: could not be redacted]"


def redact(text: str, *, personal: bool = True) -> str:
    """Card numbers and `token=...`-shaped credentials masked; with `personal`, also emails
    and international phone numbers. Never raises: what cannot be masked is withheld."""
    try:
        text = cards.mask(text, checked=False)
        if personal:
            text = _EMAIL.sub("[email]", text)
            text = _PHONE.sub("[phone]", text)
        return _SECRET_KV.sub(lambda m: m.group(1) + m.group(2) + "[redacted]", text)
    except Exception:  # noqa: BLE001 - at interpreter exit (see _WITHHELD)
        return "[withheld: could not be redacted]"  # _WITHHELD as a literal: globals may be None


def visitor(sender_id: str) -> str:
    """How a sender id appears in logs: "<tenant>:<channel>:v-<keyed hash>".

    The tenant and channel parts are ours (an id and a name), so they stay readable; the
    visitor's own part (a phone number, an email address, a client-chosen id) becomes 16 hex
    digits of HMAC-SHA256 over the whole sender id.
    """
    digest = hmac.new(_pseudonym_key, sender_id.encode(), hashlib.sha256).hexdigest()[:16]
    parts = sender_id.split(":", 2)
    if len(parts) == 3 and all(parts) and parts[1].isidentifier() and len(parts[0]) <= 64:
        return f"{parts[0][:64]}:{parts[1][:32]}:v-{digest}"
    return f"v-{digest}"


def message_text(text: str | None) -> str:
    """A visitor's (or a reply's) text as logs show it: its length, or the text itself when
    LOG_MESSAGE_TEXT is on (a development setting: texts hold emails, numbers, addresses)."""
    if text is None:
        return "<none>"
    if _log_message_text:
        return text
    return f"<{len(text)} chars>"


class JsonFormatter(logging.Formatter):
    _withheld = _WITHHELD
    _dumps = staticmethod(json.dumps)

    def format(self, record: logging.LogRecord) -> str:
        try:
            return self._format(record)
        except Exception:  # noqa: BLE001 - at interpreter exit (see _WITHHELD)
            return self._dumps({"level": str(record.levelname).lower(),
                                "logger": str(record.name), "msg": self._withheld})

    def _format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _clean(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _clean(value)
        if record.exc_info:
            entry["exc"] = _clean(self.formatException(record.exc_info))
        return json.dumps(entry, default=lambda value: _clean(str(value)))


def _clean(value: Any) -> Any:
    """`redact` through strings, lists and dicts of a log entry. With LOG_MESSAGE_TEXT on, a
    developer asked to see texts: emails and numbers stay, credentials are still masked."""
    if isinstance(value, str):
        return redact(value, personal=not _log_message_text)
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def redact_every_record() -> None:
    """Redact each log record of this process as it is created, whoever formats it later.

    For a process whose logging is not ours to format (Rasa's: bot/serve.py): the message is
    rendered once, masked by `redact`, and the traceback's text with it, so no handler Rasa
    installs can print an email or a phone number.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return
    # Closure cells, unlike this module's globals, are still there at interpreter exit.
    masked, formatter, withheld = redact, logging.Formatter(), _WITHHELD

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed format is the handler's to report
            return record
        try:
            record.msg, record.args = masked(message), ()
            if record.exc_info and not record.exc_text:
                record.exc_text = masked(formatter.formatException(record.exc_info))
        except Exception:  # noqa: BLE001 - at interpreter exit (see _WITHHELD)
            record.msg, record.args = withheld, ()
            record.exc_info, record.exc_text = None, withheld
        return record

    factory.redacting = True  # type: ignore[attr-defined]  # marks ours: installed once
    logging.setLogRecordFactory(factory)


def configure(level: str = "INFO", *, pseudonym_key: bytes | None = None,
              log_message_text: bool = False) -> None:
    """JSON lines on stderr at `level`. `pseudonym_key` keys `visitor` (Settings.log_key, the
    same in every process of a deployment); `log_message_text` is LOG_MESSAGE_TEXT."""
    global _pseudonym_key, _log_message_text
    if pseudonym_key is not None:
        _pseudonym_key = pseudonym_key
    _log_message_text = log_message_text
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that narrate their own start-up at INFO/DEBUG (FAISS's CPU-feature probing,
    # bm25s's index building): only their warnings are worth a line. httpx and httpcore log
    # every request's full URL at INFO/DEBUG: provider paths name accounts and phone number ids,
    # and a URL may carry a query with a visitor's data or a credential.
    for chatty in ("faiss.loader", "bm25s", "sentence_transformers", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
