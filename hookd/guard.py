"""The address guard (SPEC §11): which addresses an API webhook may not reach. Plain values, no I/O.

An address is denied when any spelling of it (an IPv4-mapped IPv6 address is also its
IPv4 address) lies in a network of ``deny`` and none lies in a network of ``allow``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import TypeAlias

from yarl import URL

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# SPEC §11's list, plus ``::/128``: connecting to the unspecified IPv6 address reaches this
# machine, as 0.0.0.0 does (0.0.0.0/8 is on the SPEC's list).
DEFAULT_DENY = (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "100.64.0.0/10", "0.0.0.0/8", "::1/128", "::/128", "fc00::/7", "fe80::/10",
)  # fmt: skip


class Blocked(Exception):
    """An attempt the guard stopped: ``host`` resolves to (or, ``literal``, spells) ``address``,
    which is in the denied ``network``."""

    def __init__(self, host: str, address: str, network: str, literal: bool = False) -> None:
        self.host = host
        self.address = address
        self.network = network
        self.literal = literal
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """The delivery log's message."""
        if not self.literal:
            where = f"{self.host} resolves to {self.address}, which"
        elif self.host == self.address:
            where = self.host
        else:
            where = f"{self.host} (the address {self.address})"
        return f"{where} is in the denied network {self.network} (delivery.deny_networks)"


def parse_network(text: str) -> Network:
    """``text`` as a network in CIDR form; ValueError saying what is wrong with it."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not a network in CIDR form (e.g. '10.0.0.0/8'): {exc}") from None
        raise ValueError(f"{text!r} has host bits set; the network is '{loose}'") from None


def parse_networks(texts: Sequence[str]) -> tuple[Network, ...]:
    """Each of ``texts`` parsed (they were validated when the config was loaded)."""
    return tuple(parse_network(t) for t in texts)


def _forms(address: Address) -> tuple[Address, ...]:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return (address, mapped)
    return (address,)


def denied(address: str | Address, deny: Sequence[Network], allow: Sequence[Network]) -> str | None:
    """The denied network (CIDR form) ``address`` lies in, or None when it may be reached."""
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return None  # not an address: names are checked on what they resolve to
    forms = _forms(address)
    if any(form in net for form in forms for net in allow):
        return None
    for form in forms:
        for net in deny:
            if form in net:
                return str(net)
    return None


def literal_address(host: str) -> Address | None:
    """The address ``host`` spells, when it is one: dotted, IPv6, or any numeric form the
    system's resolver would read as IPv4 (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``)."""
    host = host[:-1] if host.endswith(".") else host  # a fully qualified spelling
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # inet_aton is what getaddrinfo applies to a numeric host: every legacy spelling it
    # accepts reaches that address, so each one is treated as the address itself.
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def literal_denied(url: str, deny: Sequence[Network], allow: Sequence[Network]) -> str | None:
    """For a URL whose host is a literal address: the denied network it lies in, else None.

    The host is read as aiohttp will send it (yarl's normalised form), so a spelling that
    IDNA folds to digits is seen as the address it becomes.
    """
    try:
        host = URL(url).host
    except ValueError:
        return None
    if not host:
        return None
    address = literal_address(host)
    return denied(address, deny, allow) if address is not None else None
