"""Which client a request comes from (connectors/proxies.py): the peer, or behind a trusted
proxy the address it forwarded; IPv6 clients by their /64."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest

from connectors.proxies import client_address, counted

PROXY = "10.0.0.5"


def request(peer: str, forwarded: str | None = None, trusted: str = "") -> SimpleNamespace:
    networks = tuple(ipaddress.ip_network(n.strip()) for n in trusted.split(",") if n.strip())
    headers = {"x-forwarded-for": forwarded} if forwarded is not None else {}
    return SimpleNamespace(ip=peer, headers=headers,
                           app=SimpleNamespace(ctx=SimpleNamespace(trusted_proxies=networks)))


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "client"), [
    ("203.0.113.9", "198.51.100.7", "", "203.0.113.9"),  # no proxies named: the peer
    ("203.0.113.9", "198.51.100.7", PROXY, "203.0.113.9"),  # not from the proxy: the peer
    (PROXY, "198.51.100.7", PROXY, "198.51.100.7"),
    (PROXY, "1.2.3.4, 198.51.100.7", PROXY, "198.51.100.7"),  # the client wrote the first
    (PROXY, "198.51.100.7, 10.0.0.9", "10.0.0.0/24", "198.51.100.7"),  # two proxies
    (PROXY, "junk, 198.51.100.7", PROXY, "198.51.100.7"),
    (PROXY, "198.51.100.7, junk", PROXY, PROXY),  # nothing trustworthy after junk
    (PROXY, "", PROXY, PROXY),
])
def test_the_client(peer: str, forwarded: str, trusted: str, client: str) -> None:
    assert client_address(request(peer, forwarded, trusted)) == client  # type: ignore[arg-type]  # duck-typed request


def test_an_ipv6_client_counts_by_its_64() -> None:
    assert counted("2001:db8:1:2:aaaa::1") == counted("2001:db8:1:2:bbbb::9") == (
        "2001:db8:1:2::/64")
    assert counted("::ffff:198.51.100.7") == "198.51.100.7"
    assert counted("198.51.100.7") == "198.51.100.7"
