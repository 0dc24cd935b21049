import pytest

from ssbg.domain.network import client_ip, ip_allowed, parse_networks


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
