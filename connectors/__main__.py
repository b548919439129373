"""Run the gateway: `python -m connectors` (GATEWAY_HOST/GATEWAY_PORT, default 0.0.0.0:8000)."""

from __future__ import annotations

from connectors.app import create_app
from core import logs
from core.settings import Settings


def main() -> None:
    settings = Settings.from_env()  # a missing secret or a bad value stops the process here
    logs.configure(settings.log_level, pseudonym_key=settings.log_key,
                   log_message_text=settings.log_message_text)
    app = create_app(settings)
    app.run(
        host=settings.gateway_host,
        port=settings.gateway_port,
        single_process=True,
        access_log=False,
        motd=False,
    )


if __name__ == "__main__":
    main()
