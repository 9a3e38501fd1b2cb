"""The address guard's network logic (hookd/guard.py): plain functions, no sockets."""

from __future__ import annotations

import ipaddress

import pytest

from hookd.guard import DEFAULT_DENY, Blocked, denied, literal_address, literal_denied, parse_network, parse_networks

DENY = parse_networks(DEFAULT_DENY)
NONE = parse_networks(())


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("127.255.0.9", "127.0.0.0/8"),
        ("10.1.2.3", "10.0.0.0/8"),
        ("172.31.255.255", "172.16.0.0/12"),
        ("192.168.0.1", "192.168.0.0/16"),
        ("169.254.169.254", "169.254.0.0/16"),
        ("100.64.0.1", "100.64.0.0/10"),
        ("0.0.0.0", "0.0.0.0/8"),
        ("::1", "::1/128"),
        ("::", "::/128"),
        ("fd00::1", "fc00::/7"),
        ("fe80::1", "fe80::/10"),
        ("fe80::1%eth0", "fe80::/10"),
        ("::ffff:127.0.0.1", "127.0.0.0/8"),
        ("::ffff:a00:1", "10.0.0.0/8"),
        ("0:0:0:0:0:ffff:c0a8:1", "192.168.0.0/16"),
    ],
)
def test_denied_names_the_network(address: str, network: str) -> None:
    """An address in a default denied network, in any spelling, is denied with the network in CIDR form."""
    assert denied(address, DENY, NONE) == network


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "172.32.0.1",
                                     "100.128.0.1", "::ffff:93.184.215.14", "not-an-address"])  # fmt: skip
def test_public_addresses_pass(address: str) -> None:
    """Public addresses (and anything that is not an address) are not denied."""
    assert denied(address, DENY, NONE) is None


def test_allow_networks_take_precedence_in_every_spelling() -> None:
    """allow_networks lets an address through even in its IPv4-mapped IPv6 spelling; others stay denied."""
    allow = parse_networks(("127.0.0.1/32", "10.20.0.0/16"))
    assert denied("127.0.0.1", DENY, allow) is None
    assert denied("::ffff:127.0.0.1", DENY, allow) is None
    assert denied("10.20.3.4", DENY, allow) is None
    assert denied("127.0.0.2", DENY, allow) == "127.0.0.0/8"
    assert denied("10.21.0.1", DENY, allow) == "10.0.0.0/8"
    assert denied(ipaddress.ip_address("10.21.0.1"), DENY, allow) == "10.0.0.0/8"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
    ],
)
def test_literal_address_reads_every_numeric_spelling(host: str, address: str) -> None:
    """A host the system resolver reads as a number is that address, however it is spelled."""
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "localhost", "cafe", "0x7f.example", "1e3", ""])
def test_literal_address_leaves_names_alone(host: str) -> None:
    """Host names are not literal addresses: they are checked on what they resolve to."""
    assert literal_address(host) is None


@pytest.mark.parametrize(
    ("url", "network"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.0/8"),
        ("https://[::1]/hook", "::1/128"),
        ("http://[::ffff:127.0.0.1]/", "127.0.0.0/8"),
        ("http://[0:0:0:0:0:ffff:7f00:1]/", "127.0.0.0/8"),
        ("http://2130706433/", "127.0.0.0/8"),
        ("http://0177.0.0.1/", "127.0.0.0/8"),
        ("http://0x7f.1/", "127.0.0.0/8"),
        ("http://169.254.169.254/latest/meta-data", "169.254.0.0/16"),
        ("http://user:pw@10.0.0.5/", "10.0.0.0/8"),
        ("http://①②⑦.0.0.1/", "127.0.0.0/8"),  # IDNA folds these digits: yarl sends 127.0.0.1
        ("http://[fe80::1%25eth0]/", "fe80::/10"),
    ],
)
def test_literal_denied_names_the_network(url: str, network: str) -> None:
    """A URL whose host is a denied literal address, in any spelling, is refused naming the network."""
    assert literal_denied(url, DENY, NONE) == network


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://localhost/", "http://93.184.215.14/", "nonsense"])
def test_literal_denied_passes_names_and_public_addresses(url: str) -> None:
    """Names (checked at connect time instead) and public addresses are not refused at create time."""
    assert literal_denied(url, DENY, NONE) is None


def test_parse_network_says_what_is_wrong() -> None:
    """A bad CIDR entry gets a message naming it; host bits set name the network meant."""
    assert str(parse_network("10.0.0.0/8")) == "10.0.0.0/8"
    with pytest.raises(ValueError, match=r"'10.0.0.1/8' has host bits set; the network is '10.0.0.0/8'"):
        parse_network("10.0.0.1/8")
    with pytest.raises(ValueError, match=r"'banana' is not a network in CIDR form"):
        parse_network("banana")


def test_blocked_reason_names_host_address_and_network() -> None:
    """The blocked message names what the host resolved to and the denied network."""
    assert Blocked("localhost", "127.0.0.1", "127.0.0.0/8").reason == (
        "localhost resolves to 127.0.0.1, which is in the denied network 127.0.0.0/8 (delivery.deny_networks)"
    )
    assert Blocked("10.0.0.1", "10.0.0.1", "10.0.0.0/8", literal=True).reason.startswith("10.0.0.1 is in the denied")
    assert Blocked("2130706433", "127.0.0.1", "127.0.0.0/8", literal=True).reason.startswith(
        "2130706433 (the address 127.0.0.1) is in the denied network 127.0.0.0/8"
    )
