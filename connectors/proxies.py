"""Which address a request comes from, when a reverse proxy stands in front of us.

The gateway and the admin service count what one client may do by its address: the widget's
messages per minute and failed order checks (connectors/channels/web/socket.py), failed
logins (admin_api/people.py). Behind TLS termination every connection comes from the proxy,
so without trust in its X-Forwarded-For every visitor and every person logging in is the same
client: one visitor's typos lock order checks for all, twenty wrong passwords lock every
login. TRUSTED_PROXIES (core/settings.py) says how many proxies append to X-Forwarded-For;
Sanic then takes the client from that many entries from its end (`request.remote_addr`),
which a client cannot forge by sending a header of its own: the proxies' entries come last.
With 0 (the default) forwarded headers are ignored and the connection's peer is the client.
"""

from __future__ import annotations

from sanic import Sanic


def trust_proxies(app: Sanic, count: int) -> None:
    if count:
        app.config.PROXIES_COUNT = count
