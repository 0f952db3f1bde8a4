"""The metadata-address guard: never connect to link-local or cloud-metadata addresses.

A source URL (or a redirect an origin sends) pointing at 169.254.169.254 would
let anyone who can create an ExternalSource read the node's cloud credentials.
The check has to happen on the address actually connected to, not on a name
resolved earlier (DNS rebinding), so `GuardedResolver` sits inside aiohttp's
connector and filters every resolution it makes; IP literals never reach a
resolver in aiohttp, so `check_literal` covers them on every redirect hop.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

_LINK_LOCAL_V4 = ipaddress.IPv4Network("169.254.0.0/16")
_LINK_LOCAL_V6 = ipaddress.IPv6Network("fe80::/10")
_METADATA_V6 = ipaddress.IPv6Address("fd00:ec2::254")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressNotAllowedError(OSError):
    """A host resolved only to refused addresses (an OSError: aiohttp's connector passes it on)."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is a link-local or cloud metadata address")
        self.host = host


def is_refused(address: str) -> bool:
    """Whether `address` (an IP literal, optionally with a %zone) is link-local or metadata."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0].strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is None:
            return ip in _LINK_LOCAL_V6 or ip == _METADATA_V6
        ip = embedded
    return ip in _LINK_LOCAL_V4


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_literal(host: str) -> None:
    """Refuse a URL host that is itself a refused IP literal."""
    if is_refused(host):
        raise AddressNotAllowedError(host)


class GuardedResolver(AbstractResolver):
    """Wraps aiohttp's resolver and drops refused addresses from every answer."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not is_refused(r["host"])]
        if results and not allowed:
            raise AddressNotAllowedError(host)
        return allowed

    async def close(self) -> None:
        await self._inner.close()
