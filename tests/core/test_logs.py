"""Log lines carry no visitor data: sender ids as keyed pseudonyms, texts as lengths, and a
formatter that masks emails, phone numbers, cards and credentials whatever a caller passed."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import cards, logs
from core.settings import ROOT, Settings

SMS_SENDER = "3f0c2a9e-1111-4a4a-9c9c-000000000001:sms:+4915112345678"
EMAIL_SENDER = "3f0c2a9e-1111-4a4a-9c9c-000000000001:email:sam@example.com"


def redirect() -> io.StringIO:
    """Point the handler `configure` installed at a buffer."""
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger as `configure` sets it up, writing to a buffer; restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("DEBUG", pseudonym_key=b"k" * 32)
    stream = redirect()
    yield stream
    logs.configure("INFO")
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_visitor_is_a_keyed_pseudonym_that_keeps_tenant_and_channel() -> None:
    logs.configure("INFO", pseudonym_key=b"a" * 32)
    first = logs.visitor(SMS_SENDER)
    assert "+49" not in first and "15112345678" not in first
    assert first.startswith("3f0c2a9e-1111-4a4a-9c9c-000000000001:sms:v-")
    assert logs.visitor(SMS_SENDER) == first  # one visitor, one name across lines
    assert logs.visitor(EMAIL_SENDER) != first
    assert logs.visitor("me").startswith("v-")  # not a sender id the gateway built
    logs.configure("INFO", pseudonym_key=b"b" * 32)
    assert logs.visitor(SMS_SENDER) != first  # without the key a number cannot be tested


def test_settings_give_every_process_one_key() -> None:
    env = {"SWITCHBOARD_CREDENTIALS_KEY": "new,old", "RASA_TOKEN": "t"}
    one, same = Settings.from_env(env), Settings.from_env({**env, "RASA_TOKEN": "u"})
    other = Settings.from_env({**env, "SWITCHBOARD_CREDENTIALS_KEY": "old"})
    assert one.log_key == same.log_key != other.log_key and len(one.log_key) == 32
    assert one.log_key != one.widget_secret


def test_message_text_is_a_length_unless_asked(captured: io.StringIO) -> None:
    assert logs.message_text("my email is sam@example.com") == "<27 chars>"
    logs.configure("INFO", log_message_text=True)
    try:
        assert logs.message_text("hello") == "hello"
    finally:
        logs.configure("INFO")
    assert logs.message_text(None) == "<none>"


def test_formatter_masks_what_a_careless_caller_passes(captured: io.StringIO) -> None:
    log = logging.getLogger("tests.careless")
    log.info("lookup for sam@example.com from +4915112345678",
             extra={"to": "whatsapp:+4915112345678", "detail": {"email": "alex@example.org"},
                    "recipients": ["kim@example.net"], "auth": "token=abc123"})
    try:
        raise ValueError("no order for sam@example.com")
    except ValueError:
        log.exception("failed")
    text = captured.getvalue()
    for leaked in ("sam@example.com", "15112345678", "alex@example.org", "kim@example.net",
                   "abc123"):
        assert leaked not in text
    first = lines(captured)[0]
    assert first["msg"] == "lookup for [email] from [phone]"
    assert first["to"] == "whatsapp:[phone]" and first["detail"] == {"email": "[email]"}


def test_debug_text_setting_keeps_texts_but_never_credentials(captured: io.StringIO) -> None:
    logs.configure("INFO", log_message_text=True)
    stream = redirect()
    logging.getLogger("tests.debug").info("said", extra={
        "text": logs.message_text("I am sam@example.com"), "auth": "api_key=abc123"})
    entry = lines(stream)[0]
    assert entry["text"] == "I am sam@example.com" and entry["auth"] == "api_key=[redacted]"


def test_ids_and_numbers_that_are_not_phone_numbers_stay() -> None:
    assert logs.redact("order #1002 took 1500 ms at 1732800000") == (
        "order #1002 took 1500 ms at 1732800000")


def test_rasa_python_masks_its_records() -> None:
    """bot/serve.py imports core.logs inside Rasa's Python 3.10: standard library only, and
    every record Rasa logs is masked however Rasa formats it."""
    bot_python = ROOT / ".venv-bot" / "bin" / "python"
    if not bot_python.exists():
        pytest.skip("Rasa's environment (.venv-bot) is not installed")
    script = (
        "import logging, sys\n"
        "from core.logs import redact_every_record\n"
        "redact_every_record(); redact_every_record()\n"
        "logging.basicConfig(stream=sys.stdout, format='%(message)s')\n"
        "log = logging.getLogger('rasa.core.processor')\n"
        "log.warning(\"Circuit breaker tripped for sender '%s'\", 't1:sms:+4915112345678')\n"
        "try:\n"
        "    raise ValueError('no order for sam@example.com')\n"
        "except ValueError:\n"
        "    log.exception('failed')\n")
    done = subprocess.run([str(bot_python), "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "t1:sms:[phone]" in done.stdout and "ValueError: no order for [email]" in done.stdout
    assert "15112345678" not in done.stdout and "sam@example.com" not in done.stdout


# What an object's __del__ logs at interpreter exit (aiohttp's "Unclosed client session" in
# Rasa's process), held by core.cards so it goes while that module's globals are cleared: by
# then `cards.mask`, or core.logs' own globals, are None.
AT_EXIT = (
    "import logging, sys\n"
    "import core.cards\n"
    "from core.logs import redact_every_record\n"
    "redact_every_record()\n"
    "logging.basicConfig(stream=sys.stderr, format='%(name)s %(message)s')\n"
    "class Session:\n"
    "    def __del__(self):\n"
    "        logging.getLogger('aiohttp.client').error('Unclosed session of sam@example.com')\n"
    "core.cards.leaked = Session()\n")


@pytest.mark.parametrize("python", ["rasa", "ours"])
def test_a_record_logged_at_interpreter_exit_is_withheld_not_a_type_error(python: str) -> None:
    """Was "Exception ignored in ... TypeError: 'NoneType' object is not callable" from
    `redact` at the end of every Rasa log."""
    executable = ROOT / ".venv-bot" / "bin" / "python" if python == "rasa" else sys.executable
    if not Path(executable).exists():
        pytest.skip("Rasa's environment (.venv-bot) is not installed")
    done = subprocess.run([str(executable), "-c", AT_EXIT], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "aiohttp.client [withheld: could not be redacted]\n"


def test_with_the_modules_globals_gone_logging_neither_raises_nor_shows_the_unmasked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Interpreter exit as Python does it: every global of core.logs and core.cards is None
    (the order in which modules are cleared varies). The record factory and the JSON formatter
    still answer, with the text withheld."""
    saved = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        logs.redact_every_record()
        formatter, redact = logs.JsonFormatter(), logs.redact
        for module in (logs, cards):
            for name in list(vars(module)):
                if not name.startswith("__"):
                    monkeypatch.setattr(module, name, None)
        record = logging.getLogger("aiohttp.client").makeRecord(
            "aiohttp.client", logging.ERROR, __file__, 1, "Unclosed session of %s",
            ("sam@example.com",), None)
        line = json.loads(formatter.format(record))
        assert line == {"level": "error", "logger": "aiohttp.client",
                        "msg": "[withheld: could not be redacted]"}
        assert record.getMessage() == "[withheld: could not be redacted]"
        assert redact("token=abc sam@example.com") == "[withheld: could not be redacted]"
    finally:
        logging.setLogRecordFactory(saved)
