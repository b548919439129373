"""Where our servers may connect on a shop's behalf: one policy for every destination a shop's
owner sets (webhook URLs, the REST channel's reply callback, the WooCommerce store and Shopify
shop URLs, the email channel's SMTP server).

Why: those connections start inside our network. An owner who could name 127.0.0.1:8080,
10.0.0.5 or 169.254.169.254 would make our servers call our own admin API, our neighbours on
the network or the cloud's metadata service (server-side request forgery), and read what they
answer from the delivery log. So a destination must be public, checked twice:

- when the owner saves it (`Destinations.refusal`; the admin API answers 422 naming the
  field): names that stand for this host or a local network (localhost, *.local, *.internal)
  and every non-public address, however it is written: the resolver reads 127.1, 2130706433,
  0177.0.0.1 and 0x7f.1 as 127.0.0.1 and ::ffff:10.0.0.1 as 10.0.0.1, so this module reads
  them the same way (`numeric_address`);
- when connecting (`Destinations.client` for HTTP, `Destinations.connect` for SMTP): the name is
  resolved, every address it has must be public, and the connection goes to an address just
  checked, so a public name pointed at 127.0.0.1 after it was saved (or between a check and
  the request: DNS rebinding) is refused at request time (`PrivateDestination`). The HTTP
  clients never follow redirects, and a redirect's target would pass through the same check.

Not public: loopback, private (RFC 1918), shared (100.64/10), link-local (169.254/16: cloud
metadata), unique-local (fc00::/7), multicast, unspecified, reserved and documentation ranges,
and IPv6 forms that carry one of those IPv4 addresses (IPv4-mapped, 6to4, NAT64).

ALLOW_PRIVATE_DESTINATIONS=true (core/settings.py) lifts the address rules for development and
tests, whose stand-ins for shops' servers listen on 127.0.0.1; never in production.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from dataclasses import dataclass

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# What an owner reads after "<field> ": says what is wrong and what to give instead.
PRIVATE = ("points to a private network address (this server, a local network or cloud "
           "metadata); give the public address of your server")
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                          "ip6-loopback"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
RESOLVE_TIMEOUT = 5.0  # seconds for a name's addresses when the caller gives no timeout


class PrivateDestination(Exception):
    """A connection not made: the destination is not public. The message is for the shop's
    owner (delivery logs show it) and names no address."""

    def __init__(self, message: str = f"the destination {PRIVATE}") -> None:
        super().__init__(message)


def numeric_address(host: str) -> IPAddress | None:
    """The address `host` stands for when it is one written as a number in any form a resolver
    accepts (dotted, short 127.1, decimal 2130706433, octal 0177.0.0.1, hex 0x7f.1; IPv6 with
    or without brackets or a zone), else None (a name)."""
    name = host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    # inet_aton is the C library's own reading of IPv4 (what getaddrinfo does with a number);
    # it also stops at a space, which a host never holds.
    if not name or any(c not in "0123456789abcdefx." for c in name):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def is_public(address: IPAddress) -> bool:
    """Whether `address` is on the public internet; for IPv6 that embeds an IPv4 address
    (mapped, 6to4, NAT64), whether that one is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    return (address.is_global and not address.is_multicast and not address.is_reserved
            and not address.is_unspecified and not site_local)  # fec0::/10: deprecated, local


def private_host(host: str) -> bool:
    """Whether `host` (a URL's host or an SMTP server's) is a name of this host or a local
    network, or a non-public address in any of its written forms."""
    name = host.strip().lower().rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES):
        return True
    address = numeric_address(name)
    return address is not None and not is_public(address)


@dataclass(frozen=True)
class Destinations:
    """The policy of one process: `allow_private` is ALLOW_PRIVATE_DESTINATIONS."""

    allow_private: bool = False

    def refusal(self, host: str) -> str | None:
        """Why `host` may not be a shop's destination (to follow the field's name), or None."""
        if not self.allow_private and private_host(host):
            return PRIVATE
        return None

    async def addresses(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """The addresses to connect to for `host`, every one of them public unless allowed
        (PrivateDestination otherwise). OSError when the name does not resolve."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout or RESOLVE_TIMEOUT):
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        if not self.allow_private and (
                private_host(host) or not addresses
                or any(not is_public(ipaddress.ip_address(a.split("%", 1)[0]))
                       for a in addresses)):
            raise PrivateDestination()
        return addresses

    async def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A connected socket to `host`:`port` at an address just checked (an SMTP client
        takes it with the host's name for TLS). OSError when no address answers."""
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for address in await self.addresses(host, port, timeout):
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                async with asyncio.timeout(timeout):
                    await loop.sock_connect(sock, (address, port))
                return sock
            except OSError as exc:  # refused, unreachable, or TimeoutError: the next one
                sock.close()
                last = exc
        raise last or OSError("no address to connect to")

    def client(self, **options: typing.Any) -> httpx.AsyncClient:
        """An httpx client for shops' destinations (`options` as httpx.AsyncClient takes
        them): it never follows redirects, and unless private destinations are allowed it
        connects only to public addresses and ignores proxies set in the environment (through
        a proxy, the address we could check would be the proxy's)."""
        options["follow_redirects"] = False
        if self.allow_private:
            return httpx.AsyncClient(**options)
        limits = options.pop("limits", httpx.Limits(max_connections=100,
                                                     max_keepalive_connections=20))
        return httpx.AsyncClient(transport=_PublicTransport(self, limits), trust_env=False,
                                 **options)


class _PublicOnly(httpcore.AsyncNetworkBackend):
    """httpcore's connections, made only to addresses the policy just checked; TLS still
    verifies the certificate against the URL's host name (httpcore passes it as SNI)."""

    def __init__(self, destinations: Destinations) -> None:
        self._destinations = destinations
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._destinations.addresses(host, port, timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no address for {host} in time") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve ({exc})") from None
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._network.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options)
            except httpcore.ConnectError as exc:  # the next address may answer
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise PrivateDestination()

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class _PublicTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool that connects through `_PublicOnly`."""

    def __init__(self, destinations: Destinations, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx builds its pool without a way to pass a network backend; the same pool, with
        # ours (tests/core/test_destinations.py fails if an httpx upgrade stops using it).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PublicOnly(destinations))
