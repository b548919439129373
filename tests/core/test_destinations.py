"""The outbound-destination policy (core/destinations.py): every written form of a non-public
address is refused when saved, and a name that resolves to one is refused when connecting,
through real sockets to a local server that must see nothing. Well under a second.
"""

from __future__ import annotations

import pytest

from core.destinations import Destinations, PrivateDestination, numeric_address, private_host
from tests.fakes import FakeServer, RecordedRequest, Response

PRODUCTION, DEVELOPMENT = Destinations(), Destinations(allow_private=True)

PRIVATE = [
    # loopback, in the forms a resolver reads as 127.0.0.1
    "127.0.0.1", "127.1", "2130706433", "0177.0.0.1", "0x7f.1", "0x7f000001", "127.0.0.1.",
    # private, shared, link-local (cloud metadata), unspecified, multicast, broadcast
    "10.0.0.5", "012.0.0.5", "172.16.3.4", "192.168.1.1", "100.64.0.1", "169.254.169.254",
    "2852039166", "0.0.0.0", "0", "224.0.0.1", "239.1.2.3", "255.255.255.255",
    # IPv6: loopback, unspecified, link-local (with a zone), unique-local, multicast
    "::1", "[::1]", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1",
    "fec0::1",  # site-local: deprecated, still local (the second security walk)
    # IPv6 forms that carry a private IPv4 address: mapped, 6to4, NAT64
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "[::ffff:7f00:1]", "2002:a00:1::",
    "64:ff9b::a9fe:a9fe",
    # names of this host or of a local network
    "localhost", "LOCALHOST.", "app.localhost", "printer.local", "db.internal",
    "metadata.google.internal", "router.home.arpa",
]
PUBLIC = ["shop.example.com", "8.8.8.8", "0x08.0x08.0x08.0x08", "93.184.216.34",
          "2606:4700:4700::1111", "::ffff:8.8.8.8", "shop-2130706433.example.com",
          "127.0.0.1.example.com", "10.example"]


@pytest.mark.parametrize("host", PRIVATE)
def test_every_written_form_of_a_private_address_is_refused_when_saved(host: str) -> None:
    assert private_host(host)
    refusal = PRODUCTION.refusal(host)
    assert refusal is not None and "private network address" in refusal
    assert DEVELOPMENT.refusal(host) is None  # ALLOW_PRIVATE_DESTINATIONS=true


@pytest.mark.parametrize("host", PUBLIC)
def test_public_names_and_addresses_are_accepted(host: str) -> None:
    assert not private_host(host) and PRODUCTION.refusal(host) is None


def test_numbers_are_read_as_the_resolver_reads_them() -> None:
    assert str(numeric_address("2130706433")) == "127.0.0.1"
    assert str(numeric_address("0177.0.0.1")) == "127.0.0.1"
    assert str(numeric_address("127.1")) == "127.0.0.1"
    assert str(numeric_address("[::1]")) == "::1"
    assert numeric_address("shop.example.com") is None
    assert numeric_address("1.2.3.4.5") is None


class Shop(FakeServer):
    """A shop's server on loopback: a name of it must never be reached in production."""

    def authorized(self, request: RecordedRequest) -> bool:
        return True

    def route(self, request: RecordedRequest) -> Response:
        if request.path == "/moved":  # a redirect is a failed call, never followed
            return 302, {"Location": "http://169.254.169.254/latest/meta-data"}, {}
        return 200, {}, {"ok": True}


@pytest.mark.asyncio
async def test_a_name_resolving_to_loopback_is_refused_when_connecting() -> None:
    with Shop() as shop:
        port = shop.base_url.rsplit(":", 1)[1]
        async with PRODUCTION.client(timeout=2) as client:
            for url in (f"http://localhost:{port}/hook", f"http://2130706433:{port}/hook",
                        f"{shop.base_url}/hook"):
                with pytest.raises(PrivateDestination):
                    await client.post(url, json={"x": 1})
        assert shop.requests == []
        with pytest.raises(PrivateDestination):  # the SMTP sender's way in
            await PRODUCTION.connect("localhost", int(port), timeout=2)

        async with DEVELOPMENT.client(timeout=2, follow_redirects=True) as client:
            assert (await client.post(f"http://localhost:{port}/hook")).status_code == 200
            assert (await client.get(f"http://localhost:{port}/moved")).status_code == 302
        sock = await DEVELOPMENT.connect("localhost", int(port), timeout=2)
        sock.close()
        assert [r.path for r in shop.requests] == ["/hook", "/moved"]
