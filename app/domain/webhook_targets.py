"""Where webhooks may be sent. Punchpass POSTs to URLs merchants choose, from inside the operator's network, so
a URL must not turn it into a proxy to what only the server can reach (SSRF):

- link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, fd20:ce::254,
  100.100.100.200, and their IPv4-mapped and NAT64 forms), and IPv6 forms that tunnel to an IPv4 address
  (64:ff9b:1::/48, 6to4, IPv4-compatible) are refused always;
- loopback, private ranges and plain http only with WEBHOOKS_ALLOW_PRIVATE_TARGETS=on (a receiver on the same
  network; the tests' loopback receiver);
- a literal address is checked at registration; a hostname is checked by the worker at every delivery, on the
  addresses it resolves to then, and the connection goes to the address that was checked (`check_address`)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from app.domain.errors import InvalidInput

MAX_URL_LENGTH = 2000
_ALWAYS_REFUSED = [ipaddress.ip_network(net) for net in (
    "169.254.0.0/16", "fe80::/10",  # link-local (cloud metadata lives here: 169.254.169.254)
    "fd00:ec2::254/128", "fd20:ce::254/128", "100.100.100.200/32",  # metadata of AWS (IPv6), GCP (IPv6), Alibaba
    # IPv6 forms that can carry an IPv4 address to a gateway: local-use NAT64, 6to4, IPv4-compatible
    "64:ff9b:1::/48", "2002::/16", "::/96",
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64: the last 32 bits are an IPv4 address

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """This address may not receive webhooks; the message says why."""


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def check_address(address: IPAddress | str, allow_private: bool) -> None:
    """Raise TargetRefused unless webhooks may be sent to this address."""
    address = _embedded_ipv4(ipaddress.ip_address(address))
    if any(address in network for network in _ALWAYS_REFUSED if network.version == address.version):
        raise TargetRefused(f"{address} is a link-local or metadata address")
    if address.is_unspecified or address.is_multicast:
        raise TargetRefused(f"{address} is not a unicast address")
    if not address.is_global and not allow_private:
        raise TargetRefused(f"{address} is a loopback or private address (WEBHOOKS_ALLOW_PRIVATE_TARGETS is off)")


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: str, allow_private: bool) -> str:
    """The URL, if webhooks may be registered for it; InvalidInput naming `url` otherwise."""
    def refuse(why: str) -> InvalidInput:
        return InvalidInput("url", f"Not a usable webhook URL: {why}.")

    if len(url) > MAX_URL_LENGTH:
        raise refuse(f"longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise refuse(str(error)) from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise refuse("it must be https" if not allow_private else "it must be http or https")
    if not parts.hostname or any(ch.isspace() for ch in url):
        raise refuse("it has no host, or contains spaces")
    if parts.username is not None or parts.password is not None:
        raise refuse("credentials in the URL are not supported; check the signature instead")
    if parts.fragment:
        raise refuse("a fragment (#...) is never sent")
    if port == 0:
        raise refuse("port 0")
    address = literal_address(parts.hostname)
    if address is not None:
        try:
            check_address(address, allow_private)
        except TargetRefused as error:
            raise refuse(str(error)) from None
    elif not allow_private and (parts.hostname == "localhost" or parts.hostname.endswith(".localhost")):
        raise refuse("localhost is a loopback address (WEBHOOKS_ALLOW_PRIVATE_TARGETS is off)")
    return url
