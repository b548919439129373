"""Start Rasa with its HTTP API secret taken from the environment, never from the command line.

    python -m bot.serve run --enable-api -i 127.0.0.1 -p 5005 --model ... --endpoints ...

takes the same arguments as `rasa` and runs Rasa's own CLI in this process, adding
`--jwt-secret` from RASA_TOKEN (core/settings.py `BotSettings`). The secret is in
this process's memory and environment, not in its argv: `ps` and /proc/<pid>/cmdline show
the command as typed.

Why JWT and not `--auth-token`: Rasa 3.6 reads the auth token only from a `?token=` query
parameter (rasa/server.py `requires_auth`), so every authenticated call would carry the secret
in its URL, where httpx error texts, proxies and access logs repeat it. With `--jwt-secret`
Rasa (sanic-jwt) reads `Authorization: Bearer <JWT>` from the headers and checks its HS256
signature and expiry; the gateway mints a short-lived token per call (connectors/rasa_client.py)
with the same key, `BotSettings.rasa_jwt_key`. Passing `--auth-token` or `--jwt-secret` here is
refused: that would put a secret back on the command line.

It also keeps visitors' data out of Rasa's log (DESIGN.md, style 14): every record is masked
for emails and phone numbers as it is created (core/logs.py `redact_every_record`), and the
fields Rasa's structured events carry texts, slots and trackers in (the keys Rasa's own
`_anonymizer` names, which only Rasa Pro fills with an anonymization pipeline) are replaced.

It serves shops' own models beside the base one (bot/runtime.py `install`: every turn goes to
its shop's model). And it serves Rasa's Prometheus metrics (bot/metrics.py) on
METRICS_HOST:BOT_METRICS_PORT, from this launcher process, for all of Rasa's Sanic workers
together (`serve_rasa_metrics`).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from core.heap import hold
from core.logs import redact_every_record
from core.settings import BotSettings, ConfigError

log = logging.getLogger(__name__)

REFUSED = ("--auth-token", "--jwt-secret", "--jwt-private-key", "--jwt-method")
# rasa/utils/log_utils.py `_anonymizer`'s keys (Rasa 3.6.21): the structured events' fields that
# hold visitors' texts, entities, slots and tracker states.
RASA_TEXT_KEYS = frozenset((
    "text", "response_text", "user_text", "slot_values", "parse_data_text",
    "parse_data_entities", "prediction_events", "tracker_latest_message", "prefilled_slots",
    "message", "response", "slot_candidates", "rasa_event", "rasa_events", "tracker_states",
    "current_states", "old_states", "successes", "current_entity", "next_entity", "states",
    "entity", "token_text", "user_message", "json_message",
))


def drop_texts(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor in place of Rasa's `_anonymizer`: those fields' values go."""
    for key in RASA_TEXT_KEYS & event_dict.keys():
        event_dict[key] = "[redacted]"
    return event_dict


def keep_visitors_out_of_logs() -> None:
    redact_every_record()
    import rasa.utils.log_utils  # Rasa's interpreter only

    # configure_structlog() reads the module global when it builds its processor list.
    rasa.utils.log_utils._anonymizer = drop_texts


def rasa_argv(args: Sequence[str], settings: BotSettings) -> list[str]:
    """Rasa's argv: ours plus the JWT key; `args` must not carry a secret of their own."""
    given = [arg for arg in args if arg.split("=", 1)[0] in REFUSED]
    if given:
        raise ConfigError(f"{given[0].split('=', 1)[0]} is not accepted on the command line: "
                          f"bot.serve passes the key from RASA_TOKEN")
    if not args or args[0] != "run":
        raise ConfigError("bot.serve runs `rasa run ...` only (the server that needs the key)")
    return ["rasa", *args, "--jwt-secret", settings.rasa_jwt_key.reveal(), "--jwt-method", "HS256"]


def serve_rasa_metrics(settings: BotSettings) -> None:
    """Measure Rasa's requests and NLU parses and serve them, unless BOT_METRICS_PORT is 0.

    Sanic forks its workers from this process after this has run, so the values go through
    the client library's multiprocess mode: a fresh PROMETHEUS_MULTIPROC_DIR for this start
    (under the temporary directory: Rasa's image has no writable var/; removed at exit), set
    before prometheus_client is first imported, and read at each scrape by the endpoint this
    process serves. With one worker the same path is taken, so both shapes are counted alike.
    """
    if settings.bot_metrics_port == 0:
        log.info("metrics not served (port 0)", extra={"server": "bot"})
        return
    directory = tempfile.mkdtemp(prefix="switchboard-bot-metrics-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)  # forked workers skip atexit
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    # prometheus_client chooses its value storage when first imported: after the variable.
    from bot.metrics import instrument_rasa, multiprocess_registry
    from core.metrics import serve_metrics

    instrument_rasa()
    serve_metrics(settings.metrics_host, settings.bot_metrics_port, "bot",
                  registry=multiprocess_registry())


def serve_shop_models(settings: BotSettings) -> None:
    """Every shop's turns go to its own model when it has one (bot/runtime.py)."""
    from bot.runtime import install
    from bot.shop_models import Registry

    install(Registry(settings.shop_models_dir), settings.bot_model_memory_mb)


def main(args: Sequence[str] | None = None) -> None:
    settings = BotSettings.from_env()  # a missing RASA_TOKEN stops the server here
    sys.argv = rasa_argv(sys.argv[1:] if args is None else args, settings)
    keep_visitors_out_of_logs()
    serve_rasa_metrics(settings)
    serve_shop_models(settings)
    hold()  # until the base model is loaded and settled (bot/runtime.py, core/heap.py)
    from rasa.__main__ import main as rasa_main  # Rasa's interpreter only

    rasa_main()


if __name__ == "__main__":
    main()
