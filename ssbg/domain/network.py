"""Client address rules: allow-lists and which address to believe."""

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = f"(?:{_OCTET}\\.){{3}}{_OCTET}"
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    (
        f"(?:{_H}:){{7}}{_H}",
        f"(?:{_H}:){{1,7}}:",
        f"(?:{_H}:){{1,6}}:{_H}",
        f"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
        f"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
        f"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
        f"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
        f"{_H}:(?::{_H}){{1,6}}",
        f":(?:(?::{_H}){{1,7}}|:)",
    )
)
IP_NETWORK_PATTERN = (
    f"^(?:{_IPV4}(?:/(?:3[0-2]|[12]?[0-9]))?|(?:{_IPV6})(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$"
)
"""An IPv4 or IPv6 address, optionally with a prefix length (CIDR): what an API key's
``allowed_ips`` entry may be, in the API's description and in its validation."""


def parse_networks(entries: Iterable[str]) -> list[IPNetwork]:
    """Addresses or CIDR blocks; raises ``ValueError`` on anything else."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries]


def _address(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _in_any(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[IPNetwork]
) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def ip_allowed(source_ip: str | None, allowed: Sequence[str]) -> bool:
    """An empty allow-list allows every address; otherwise the address must be in one entry."""
    if not allowed:
        return True
    address = _address(source_ip)
    return address is not None and _in_any(address, parse_networks(allowed))


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]
) -> str | None:
    """The client's address: the socket peer, unless the peer is a trusted proxy.

    Behind trusted proxies, ``X-Forwarded-For`` is read from the right, skipping trusted hops;
    the first untrusted address is the client. Entries left of it are client-controlled and
    ignored. A malformed entry stops the walk at the last address we could trust.
    """
    peer_address = _address(peer)
    if peer_address is None or not forwarded_for or not _in_any(peer_address, trusted_proxies):
        return str(peer_address) if peer_address is not None else peer
    candidate = peer_address
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            break
        candidate = address
        if not _in_any(address, trusted_proxies):
            break
    return str(candidate)


def scrape_allowed(
    peer: str | None,
    forwarded_for: str | None,
    other_forwarding: bool,
    trusted_proxies: Sequence[IPNetwork],
    allowed: Sequence[IPNetwork],
) -> bool:
    """Whether a client may read ``/metrics``: its address must be in ``allowed``.

    The address is the one every other rule uses (:func:`client_ip`: the socket peer, or,
    behind trusted proxies, the first untrusted ``X-Forwarded-For`` hop). The socket peer
    alone would be wrong behind a reverse proxy on the same host: every request from the
    internet would arrive from loopback, the default allow-list. So a request that says it was
    forwarded is refused unless the forwarding can be resolved — ``X-Forwarded-For`` (or a
    ``Forwarded``/``X-Real-IP`` header) from a peer that is not a trusted proxy, or a trusted
    proxy that names the client only in a header we do not read. An empty allow-list allows
    nobody.
    """
    forwarded = forwarded_for is not None or other_forwarding
    if forwarded:
        peer_address = _address(peer)
        if peer_address is None or not _in_any(peer_address, trusted_proxies):
            return False
        if forwarded_for is None:
            return False
    source = _address(client_ip(peer, forwarded_for, trusted_proxies))
    return source is not None and _in_any(source, allowed)


def served_over_https(
    scheme: str, peer: str | None, forwarded_proto: str | None, trusted_proxies: Sequence[IPNetwork]
) -> bool:
    """Whether the client reached us over TLS: the connection's own scheme, or — only when
    the peer is a trusted proxy (``SSBG_TRUSTED_PROXIES``) — the proxy's ``X-Forwarded-Proto``
    (its last value: the one the nearest proxy set)."""
    if scheme == "https":
        return True
    peer_address = _address(peer)
    if peer_address is None or not forwarded_proto or not _in_any(peer_address, trusted_proxies):
        return False
    return forwarded_proto.split(",")[-1].strip().lower() == "https"
