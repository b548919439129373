"""Run the action server: `python -m actions [--host H] [--port P]` (default: settings), its
metrics on METRICS_HOST/ACTIONS_METRICS_PORT (default 127.0.0.1:9102).

We start rasa-sdk's own Sanic app in a single process (scale out with more replicas) so our
JSON logging and warning filter apply to the process that serves requests.
"""

from __future__ import annotations

import argparse
import logging
import warnings

from core import heap, logs
from core.metrics import serve_metrics

# rasa-sdk 3.21 warns on every call that Rasa 3.6 "might not be compatible". DESIGN.md records
# that this exact pair was checked (custom actions, sender_id and metadata arrive), so we
# silence that one warning and nothing else.
warnings.filterwarnings("ignore",
                        message="Your versions of rasa and rasa_sdk might not be compatible")

log = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description="Switchboard action server")
    parser.add_argument("--host", help="address to listen on (default: ACTIONS_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default: ACTIONS_PORT)")
    args = parser.parse_args()

    from actions.runtime import action_settings, runtime, warm_when_started

    settings = action_settings()  # a missing secret or a bad value stops the process here
    logs.configure(settings.log_level, pseudonym_key=settings.log_key,
                   log_message_text=settings.log_message_text)
    host = args.host or settings.actions_host
    port = args.port or settings.actions_port
    from rasa_sdk.endpoint import create_app

    from actions.metrics import InstrumentedExecutor

    runtime()  # open the database at start-up, not on the first turn
    serve_metrics(settings.metrics_host, settings.actions_metrics_port, "actions")
    executor = InstrumentedExecutor()  # rasa-sdk's, each action counted by route
    executor.register_package("actions")
    app = create_app(executor)
    heap.settle_when_started(app)
    # The knowledge runtime, the embedder and the shops' indexes load once the server is up,
    # beside serving: the first knowledge question waited ~10 s for them (most of it the
    # anthropic package's import), later ones 15-400 ms. Order status and returns never need them.
    warm_when_started(app)
    log.info("action server listening", extra={"url": f"http://{host}:{port}"})
    app.run(host=host, port=port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
