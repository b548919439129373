"""Run the gateway: `python -m connectors` (GATEWAY_HOST/GATEWAY_PORT, default 0.0.0.0:8000)."""

from __future__ import annotations

import os

from connectors.app import create_app
from core import logs
from core.settings import Settings


def main() -> None:
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    app = create_app(Settings.from_env())
    app.run(
        host=os.environ.get("GATEWAY_HOST", "0.0.0.0"),
        port=int(os.environ.get("GATEWAY_PORT", "8000")),
        single_process=True,
        access_log=False,
        motd=False,
    )


if __name__ == "__main__":
    main()
