"""Run the gateway: `python -m connectors` (GATEWAY_HOST/GATEWAY_PORT, default 0.0.0.0:8000;
its metrics on METRICS_HOST/GATEWAY_METRICS_PORT, default 127.0.0.1:9101, never the public port)."""

from __future__ import annotations

from connectors.app import create_app
from core import heap, logs
from core.metrics import serve_metrics
from core.settings import Settings


def main() -> None:
    settings = Settings.from_env()  # a missing secret or a bad value stops the process here
    logs.configure(settings.log_level, pseudonym_key=settings.log_key,
                   log_message_text=settings.log_message_text)
    app = create_app(settings)
    heap.settle_when_started(app)
    serve_metrics(settings.metrics_host, settings.gateway_metrics_port, "gateway")
    app.run(
        host=settings.gateway_host,
        port=settings.gateway_port,
        single_process=True,
        access_log=False,
        motd=False,
    )


if __name__ == "__main__":
    main()
