"""Serving a process's Prometheus metrics on a port of its own, and the rules for label values.

Each process defines its metrics in its package's `metrics` module (connectors/metrics.py,
actions/metrics.py, knowledge/metrics.py, bot/metrics.py) with the official client library, in
its default registry, and serves them with `serve_metrics` from a thread of the client library's own
(a small WSGI server): the scrape never waits for the event loop, and the public port never
answers /metrics. The address is METRICS_HOST (loopback unless set: in compose the container's
interface on the internal network, not published) and the process's own *_METRICS_PORT.

Label values never carry visitors' data (DESIGN.md, style 14): no sender ids, emails, phone
numbers or texts, only values from small sets we define (channel names, routes, statuses,
error kinds) or our own shop ids. `bounded` maps anything else to "other", so a label cannot
grow without limit either.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

log = logging.getLogger(__name__)

OTHER = "other"
# The channels a visitor's message arrives on (the gateway's InboundMessage.channel, in the
# metadata Rasa hands the action server): the one label every process shares.
CHANNELS = ("rest", "web", "sms", "whatsapp", "email")


def bounded(value: str | None, allowed: Collection[str]) -> str:
    """`value` when it is one of `allowed`, else "other": a label value from a known set."""
    return value if value is not None and value in allowed else OTHER


def serve_metrics(host: str, port: int, process: str,
                  registry: CollectorRegistry = REGISTRY) -> WSGIServer | None:
    """Serve this process's metrics at http://host:port/metrics from a daemon thread.

    `registry` is the client library's default one, except in Rasa, whose Sanic workers are
    processes of their own: there it reads every worker's files (bot/metrics.py). Port 0 serves
    none. A port already taken (a second process of the same kind on one host with the default
    port) is logged as an error and the process runs on without metrics:
    they are worth less than the answers the process gives.
    """
    if port == 0:
        log.info("metrics not served (port 0)", extra={"server": process})
        return None
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("metrics not served: the port is not free",
                  extra={"server": process, "host": host, "port": port,
                         "error": type(exc).__name__})
        return None
    log.info("metrics served", extra={"server": process, "url": f"http://{host}:{port}/metrics"})
    return server
