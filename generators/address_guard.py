"""The address guard: no connection to link-local, metadata or (by default) loopback addresses.

A source URL (or a redirect an origin sends) pointing at 169.254.169.254 would
let anyone who can create an ExternalSource read the node's cloud credentials;
one pointing at the pod's own loopback (`http://0x7f.1:8080/metrics`, the hooks
sidecar) would publish the pod's internals as an artifact. The check has to
happen on the address actually connected to, not on a name resolved earlier
(DNS rebinding), so `GuardedResolver` sits inside aiohttp's connector and
filters every resolution it makes; IP literals never reach a resolver in
aiohttp, so `refusal` covers them on every redirect hop — including the legacy
forms `inet_aton` accepts (`0x7f.1`, `2130706433`, `127.1`, `0177.0.0.1`) and
IPv4 embedded in IPv6 (`::ffff:127.0.0.1`, NAT64, 6to4).

Loopback here means 127.0.0.0/8, ::1 and the unspecified addresses (0.0.0.0,
::), which Linux connects to the local host. `--allow-loopback-addresses`
lifts that part (tests, local mode), `--allow-link-local-addresses` the other;
see docs/security.md ("Outbound requests").
"""

from __future__ import annotations

import functools
import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

_LINK_LOCAL_V4 = ipaddress.IPv4Network("169.254.0.0/16")
_LINK_LOCAL_V6 = ipaddress.IPv6Network("fe80::/10")
_METADATA_V6 = ipaddress.IPv6Address("fd00:ec2::254")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_UNSPECIFIED_V4 = ipaddress.IPv4Address("0.0.0.0")  # noqa: S104 - an address we refuse

LINK_LOCAL = "a link-local or cloud metadata address"
LOOPBACK = "a loopback address"


class AddressNotAllowedError(OSError):
    """A host resolved only to refused addresses (an OSError: aiohttp's connector passes it on)."""

    def __init__(self, host: str, what: str = LINK_LOCAL) -> None:
        super().__init__(f"{host} is {what}")
        self.host = host
        self.what = what


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = address.split("%", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not text or not all(c.isalnum() or c == "." for c in text):
        return None
    try:  # the forms getaddrinfo also accepts: 0x7f.1, 2130706433, 127.1, 0177.0.0.1
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _ipv4_view(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return embedded
    return ip


def is_refused(address: str) -> bool:
    """Whether `address` (an IP literal, optionally with a %zone) is link-local or metadata."""
    ip = _parse(address)
    if ip is None:
        return False
    ip = _ipv4_view(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        return ip in _LINK_LOCAL_V6 or ip == _METADATA_V6
    return ip in _LINK_LOCAL_V4


def is_loopback(address: str) -> bool:
    """Whether `address` (an IP literal in any form) reaches the local host."""
    ip = _parse(address)
    if ip is None:
        return False
    ip = _ipv4_view(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        return ip.is_loopback or ip.is_unspecified
    return ip in _LOOPBACK_V4 or ip == _UNSPECIFIED_V4


@functools.lru_cache(maxsize=4096)
def refusal(address: str, *, allow_link_local: bool, allow_loopback: bool) -> str | None:
    """What `address` is if the policy refuses it (`LINK_LOCAL`, `LOOPBACK`), else None.

    Cached: it depends only on its arguments, and every fetch asks it for every address."""
    if not allow_link_local and is_refused(address):
        return LINK_LOCAL
    if not allow_loopback and is_loopback(address):
        return LOOPBACK
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_literal(host: str) -> None:
    """Refuse a URL host that is itself a link-local/metadata IP literal."""
    if is_refused(host):
        raise AddressNotAllowedError(host)


class GuardedResolver(AbstractResolver):
    """Wraps aiohttp's resolver and drops refused addresses from every answer."""

    def __init__(
        self,
        inner: AbstractResolver,
        *,
        allow_link_local: bool,
        allow_loopback: bool,
    ) -> None:
        self._inner = inner
        self._allow_link_local = allow_link_local
        self._allow_loopback = allow_loopback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed, what = [], LINK_LOCAL
        for result in results:
            reason = refusal(
                result["host"],
                allow_link_local=self._allow_link_local,
                allow_loopback=self._allow_loopback,
            )
            if reason is None:
                allowed.append(result)
            else:
                what = reason
        if results and not allowed:
            raise AddressNotAllowedError(host, what)
        return allowed

    async def close(self) -> None:
        await self._inner.close()
