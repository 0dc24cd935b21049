import re

import pytest

from ssbg.domain.network import (
    IP_NETWORK_PATTERN,
    IPNetwork,
    client_ip,
    ip_allowed,
    parse_networks,
    scrape_allowed,
    served_over_https,
)


@pytest.mark.parametrize(
    ("source", "allowed", "expected"),
    [
        ("203.0.113.7", [], True),
        ("203.0.113.7", ["203.0.113.7"], True),
        ("203.0.113.7", ["203.0.113.0/24"], True),
        ("203.0.114.7", ["203.0.113.0/24"], False),
        ("2001:db8::5", ["2001:db8::/32"], True),
        ("2001:db9::5", ["2001:db8::/32", "203.0.113.0/24"], False),
        (None, ["203.0.113.0/24"], False),
        ("not-an-ip", ["203.0.113.0/24"], False),
    ],
)
def test_allow_list(source: str | None, allowed: list[str], expected: bool) -> None:
    assert ip_allowed(source, allowed) is expected


def test_invalid_allow_list_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="does not appear"):
        parse_networks(["10.0.0.0/33x"])


PROXIES = parse_networks(["10.0.0.0/8"])


def test_socket_address_is_used_when_the_peer_is_not_a_trusted_proxy() -> None:
    assert client_ip("198.51.100.9", "203.0.113.7", PROXIES) == "198.51.100.9"


def test_forwarded_address_is_used_behind_a_trusted_proxy() -> None:
    assert client_ip("10.0.0.2", "203.0.113.7", PROXIES) == "203.0.113.7"


def test_client_supplied_entries_left_of_the_first_untrusted_hop_are_ignored() -> None:
    forwarded = "1.2.3.4, 203.0.113.7, 10.0.0.3"
    assert client_ip("10.0.0.2", forwarded, PROXIES) == "203.0.113.7"


def test_malformed_forwarded_entry_stops_at_the_last_trusted_address() -> None:
    assert client_ip("10.0.0.2", "garbage", PROXIES) == "10.0.0.2"


LOOPBACK = parse_networks(["127.0.0.0/8", "::1/128"])
PROMETHEUS_NET = parse_networks(["192.0.2.0/24"])
LOCAL_PROXY = parse_networks(["127.0.0.1/32"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "other", "trusted", "allowed", "expected"),
    [
        # Direct scrapes: the socket peer decides.
        ("127.0.0.1", None, False, [], LOOPBACK, True),
        ("::1", None, False, [], LOOPBACK, True),
        ("203.0.113.7", None, False, [], LOOPBACK, False),
        ("127.0.0.1", None, False, [], [], False),  # an empty allow-list allows nobody
        (None, None, False, [], LOOPBACK, False),
        # A reverse proxy on loopback that is not trusted: whoever it forwards is refused,
        # though the peer itself is in the allow-list.
        ("127.0.0.1", "203.0.113.7", False, [], LOOPBACK, False),
        ("127.0.0.1", "127.0.0.1", False, [], LOOPBACK, False),
        ("127.0.0.1", None, True, [], LOOPBACK, False),
        # A trusted proxy: the forwarded client decides, never the proxy's own address.
        ("127.0.0.1", "203.0.113.7", False, LOCAL_PROXY, LOOPBACK, False),
        ("127.0.0.1", "192.0.2.9", False, LOCAL_PROXY, PROMETHEUS_NET, True),
        ("127.0.0.1", "192.0.2.9, 203.0.113.7", False, LOCAL_PROXY, PROMETHEUS_NET, False),
        # ... and one naming the client only in a header that is not read is refused.
        ("127.0.0.1", None, True, LOCAL_PROXY, LOOPBACK, False),
    ],
)
def test_who_may_scrape_metrics(
    peer: str | None,
    forwarded_for: str | None,
    other: bool,
    trusted: list[IPNetwork],
    allowed: list[IPNetwork],
    expected: bool,
) -> None:
    assert scrape_allowed(peer, forwarded_for, other, trusted, allowed) is expected


@pytest.mark.parametrize(
    ("entry", "declared"),
    [
        ("10.0.0.0/8", True),
        ("203.0.113.7", True),
        ("0.0.0.0/0", True),
        ("::", True),
        ("2001:db8::/32", True),
        ("1:2:3:4:5:6:7::", True),
        ("10.0.0.0/33", False),
        ("010.0.0.1", False),
        (" 10.0.0.1", False),
        ("10.0.0.0/255.0.0.0", False),
        ("::ffff:10.0.0.1", False),
        ("1::2::3", False),
        ("fe80::1%eth0", False),
    ],
)
def test_the_declared_ip_network_grammar(entry: str, declared: bool) -> None:
    """Everything the pattern admits is a network the gateway parses."""
    assert bool(re.fullmatch(IP_NETWORK_PATTERN, entry)) == declared
    if declared:
        parse_networks([entry])


@pytest.mark.parametrize(
    ("scheme", "peer", "proto", "expected"),
    [
        ("https", "203.0.113.9", None, True),
        ("http", "203.0.113.9", None, False),
        ("http", "10.0.0.2", "https", True),  # a trusted proxy says so
        ("http", "10.0.0.2", "http, https", True),  # the nearest proxy's value counts
        ("http", "10.0.0.2", "https, http", False),
        ("http", "203.0.113.9", "https", False),  # anyone else may not
        ("http", None, "https", False),
    ],
)
def test_served_over_https_believes_only_trusted_proxies(
    scheme: str, peer: str | None, proto: str | None, expected: bool
) -> None:
    trusted = parse_networks(["10.0.0.0/8"])

    assert served_over_https(scheme, peer, proto, trusted) is expected
