"""Which client a request comes from, when reverse proxies stand in front of us.

The gateway and the admin service count what one client may do by its address: the widget's
messages per minute and failed order checks (connectors/channels/web/socket.py), failed
logins and reset requests (admin_api/people.py, admin_api/passwords.py). Behind TLS
termination every connection comes from the proxy, so without trust in its X-Forwarded-For
every visitor and every person logging in is one client: one visitor's typos lock order
checks for all, twenty wrong passwords lock every login.

TRUSTED_PROXIES (core/settings.py) names the proxies by address (IPs or networks). Only a
connection from one of them has its X-Forwarded-For read, from its end: the last entry that
is not itself a trusted proxy is the client (each proxy appends the address it saw, so what
a client writes into the header comes first and is passed over). A client that reaches the
service directly is its own peer whatever it sends: trusting the header from anyone (Sanic's
PROXIES_COUNT) let each request name a new address and so escape every limit. Unset: the
peer is the client.

An IPv6 client is counted by its /64: one host usually holds a whole /64 and could otherwise
take a fresh allowance with each address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from sanic import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request: Request) -> str:
    """The client of this request as limits count it (module doc)."""
    trusted: Sequence[Network] = getattr(request.app.ctx, "trusted_proxies", ())
    peer = request.ip or ""
    client = peer
    if trusted and _within(peer, trusted):
        forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",")]
        for address in reversed([a for a in forwarded if a]):
            if _parsed(address) is None:
                break  # not an address: nothing before it can be trusted either
            client = address
            if not _within(address, trusted):
                break
    return counted(client) or "unknown"


def counted(address: str) -> str:
    """An IPv6 address as its /64 (an IPv4-mapped one as the IPv4 address); anything else as
    it is."""
    parsed = _parsed(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return str(parsed)


def _parsed(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None


def _within(address: str, networks: Sequence[Network]) -> bool:
    parsed = _parsed(address)
    return parsed is not None and any(parsed in network for network in networks)
