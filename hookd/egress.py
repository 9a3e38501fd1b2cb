"""How a webhook's requests leave hookd (SPEC §14, §11): through which proxy, trusting and
presenting which certificates, and whether the address guard checks where they go.

An ``Egress`` is a plain, hashable value: the client sessions are kept per destination and
egress, so webhooks with the same settings share sessions and SSL contexts.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hookd.config import DeliveryConfig, Webhook
from hookd.guard import Address, Blocked, Network, denied, parse_networks
from hookd.redact import shown_url
from hookd.tls import TlsMaterial


@dataclass(frozen=True, slots=True)
class Guard:
    """The address guard's networks, parsed."""

    deny: tuple[Network, ...]
    allow: tuple[Network, ...]

    def check(self, host: str, address: str | Address, literal: bool = False) -> None:
        """Raise Blocked when ``address`` (what ``host`` resolves to, or spells) is denied."""
        network = denied(address, self.deny, self.allow)
        if network is not None:
            raise Blocked(host, str(address), network, literal)


@dataclass(frozen=True, slots=True)
class Egress:
    """One webhook's way out: ``proxy`` None (direct), ``"env"`` or a proxy URL with its
    credentials; extra TLS material; the guard, for webhooks created through the API."""

    proxy: str | None = field(default=None, repr=False)
    tls: TlsMaterial | None = None
    guard: Guard | None = None


DIRECT = Egress()


def egress_for(webhook: Webhook, delivery: DeliveryConfig) -> Egress:
    """The webhook's settings over [delivery]'s: ``proxy`` as a whole, ``tls`` key by key."""
    proxy = webhook.proxy or delivery.proxy
    guard = None
    # SPEC §11: webhooks from the config file are trusted; those from the API are checked.
    if webhook.source == "api":
        guard = Guard(parse_networks(delivery.deny_networks), parse_networks(delivery.allow_networks))
    return Egress(
        None if proxy == "direct" else proxy,
        webhook.tls.keys().over(delivery.tls.keys()).material(),
        guard,
    )


def proxy_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``http``, ``https`` and ``no`` from HTTP_PROXY, HTTPS_PROXY and NO_PROXY (the lower-case
    spelling first, as curl reads them)."""
    out = {}
    for name in ("http", "https", "no"):
        value = environ.get(f"{name}_proxy") or environ.get(f"{name.upper()}_PROXY")
        if value:
            out[name] = value
    return out


def choose_proxy(setting: str | None, scheme: str, host: str, port: int | None, env: Mapping[str, str]) -> str | None:
    """The proxy URL for a request to ``scheme://host:port`` under ``setting``; None: direct."""
    if setting != "env":
        return setting
    # NO_PROXY read as urllib reads it (suffixes, host:port, "*"); typeshed does not list the function.
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if "no" in env and bypass(host if port is None else f"{host}:{port}", dict(env)):
        return None
    chosen = env.get(scheme)
    if chosen and "://" not in chosen:
        chosen = f"http://{chosen}"  # HTTPS_PROXY=proxy:3128, as curl allows
    return chosen or None


def shown_proxy(proxy: str) -> str:
    """A proxy setting as it may be shown (config view, delivery log): credentials as ``***``."""
    if proxy in ("env", "direct"):
        return proxy
    shown = shown_url(proxy)
    if "@" in proxy and "@" not in shown:
        scheme, _, rest = shown.partition("://")
        shown = f"{scheme}://***@{rest}"
    return shown


class GuardedResolver(AbstractResolver):
    """The default resolver, then the guard on every address it returns: the connector
    connects only to addresses that passed, whatever DNS answers next time."""

    def __init__(self, guard: Guard) -> None:
        self._inner = DefaultResolver()
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``; Blocked if any address is denied."""
        results = await self._inner.resolve(host, port, family)
        for r in results:
            self._guard.check(host, r["host"])
        return results

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()
