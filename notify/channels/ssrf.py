"""Where a webhook may go: public internet addresses only, checked when the URL is saved and
again, after resolving, at every send (ADR 0017).

A tenant chooses its ``webhook_url`` and the service POSTs to it from inside the operator's
network. Without a check, ``http://169.254.169.254/latest/meta-data/`` (a cloud's metadata
service), ``http://localhost:5432`` or ``http://10.0.0.7/admin`` would make the service call
hosts that only it can reach. So the URL's host, and every address its name resolves to, must
not be loopback, private, link-local, multicast, reserved, unspecified or otherwise not
globally routable (IPv4 and IPv6; IPv4 addresses embedded in IPv6 -- mapped ``::ffff:a.b.c.d``,
6to4, NAT64 -- are judged as the IPv4 address they carry).

DNS can change between the check and the connection (and a hostile name server can answer
differently each time), so the sender resolves once, checks every answer and connects to the
address it checked: :func:`resolve_destination` gives it, :func:`pinned_request` builds the
request to that address with the original ``Host`` header and TLS server name (certificates
are still verified against the URL's host name).

``allow_private`` (``LASTMILE_WEBHOOK_ALLOW_PRIVATE``) switches the address check off, for
tests and the demo whose receivers listen on 127.0.0.1; never in production.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``socket.getaddrinfo``'s shape: (host, port, family, type, proto, flags) -> 5-tuples.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CHECKS = (
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_reserved", "a reserved"),
    ("is_private", "a private"),
)


class DestinationRefusedError(Exception):
    """The URL's host is, or resolves to, an address webhooks must not go to."""


class UnresolvedError(Exception):
    """The URL's host name does not resolve (now)."""


def refusal(address: IPAddress) -> str | None:
    """Why webhooks must not go to ``address`` (``"a loopback"``, ...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address in IPv6 clothing reaches that IPv4 address: judged as it.
        if address.ipv4_mapped is not None:
            return refusal(address.ipv4_mapped)
        if address in _NAT64:
            return refusal(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        embedded: list[IPAddress] = []
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        for inner in embedded:
            if (why := refusal(inner)) is not None:
                return why
        if address.is_site_local:
            return "a site-local"
    for attribute, why in _CHECKS:
        if getattr(address, attribute):
            return why
    if not address.is_global:  # e.g. 100.64.0.0/10, shared address space behind carrier NAT
        return "a non-public"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL taken apart: ``host`` as sent on the wire (IDNA), port, ``Host`` header."""

    url: httpx.URL
    host: str
    port: int
    host_header: str

    @property
    def tls(self) -> bool:
        return self.url.scheme == "https"


def parse_target(url: str) -> Target:
    """The parts of an http(s) URL with a host; ValueError (saying why) otherwise."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ValueError("is not a valid URL") from exc
    if parsed.scheme not in ("http", "https"):
        raise ValueError("must be an http(s):// URL")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise ValueError("has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65_536:
        raise ValueError("has an invalid port")
    return Target(parsed, host, port, parsed.netloc.decode("ascii"))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve(host: str, port: int, resolver: Resolver = socket.getaddrinfo) -> list[IPAddress]:
    """Every address ``host`` stands for (itself if an IP literal), in the resolver's order;
    :class:`UnresolvedError` if none."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        answers = resolver(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise UnresolvedError(f"cannot resolve the host ({type(exc).__name__})") from exc
    found: list[IPAddress] = []
    for answer in answers:
        text = str(answer[4][0]).split("%", 1)[0]  # an IPv6 scope (fe80::1%eth0) is dropped
        address = _literal(text)
        if address is not None and address not in found:
            found.append(address)
    if not found:
        raise UnresolvedError("the host resolves to no address")
    return found


def resolve_destination(
    target: Target, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo
) -> IPAddress:
    """The address to connect to: the first the host resolves to, once every one of them has
    been checked (one refused address refuses the URL, so a name cannot mix a public address
    with an internal one). Raises :class:`DestinationRefusedError` or
    :class:`UnresolvedError`."""
    addresses = resolve(target.host, target.port, resolver)
    if not allow_private:
        for address in addresses:
            if (why := refusal(address)) is not None:
                raise DestinationRefusedError(
                    f"the host is or resolves to {why} address: webhooks go only to public "
                    "internet addresses"
                )
    return addresses[0]


def check_saved_url(
    url: str, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo
) -> str | None:
    """Why ``url`` cannot be a tenant's webhook URL, or None. A host name that does not
    resolve yet is accepted: every send resolves and checks it again."""
    try:
        target = parse_target(url)
        resolve_destination(target, allow_private=allow_private, resolver=resolver)
    except ValueError as exc:
        return str(exc)
    except DestinationRefusedError as exc:
        return str(exc)
    except UnresolvedError:
        return None
    return None


def pinned_request(
    client: httpx.Client, target: Target, address: IPAddress, **kwargs: Any
) -> httpx.Request:
    """A POST to ``target`` that connects to ``address`` (no second lookup), with the URL's own
    ``Host`` header and, for https, its host name as TLS server name (SNI, and the name the
    certificate is verified against)."""
    headers = {**kwargs.pop("headers", {}), "Host": target.host_header}
    extensions = {"sni_hostname": target.host} if target.tls else {}
    return client.build_request(
        "POST",
        target.url.copy_with(host=str(address)),
        headers=headers,
        extensions=extensions,
        **kwargs,
    )
