"""The admin service: `python -m admin_api serve` runs it (ADMIN_HOST/ADMIN_PORT, default
0.0.0.0:8080; metrics on METRICS_HOST/ADMIN_METRICS_PORT, default 127.0.0.1:9104).
Other subcommands manage shops, people and keys from the server's shell (`--help`)."""

from __future__ import annotations

import argparse

from admin_api.app import create_app
from core import logs
from core.metrics import serve_metrics
from core.settings import Settings


def serve() -> None:
    settings = Settings.from_env()  # a missing secret or a bad value stops the process here
    logs.configure(settings.log_level, pseudonym_key=settings.log_key,
                   log_message_text=settings.log_message_text)
    app = create_app(settings)
    serve_metrics(settings.metrics_host, settings.admin_metrics_port, "admin")
    app.run(host=settings.admin_host, port=settings.admin_port, single_process=True,
            access_log=False, motd=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m admin_api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the admin service")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve()


if __name__ == "__main__":
    main()
