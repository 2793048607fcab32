"""Where webhooks may go: the address rules (IPv4, IPv6, IPv4 inside IPv6), the URL check when
a policy is saved, and the lookup the sender connects with. No network: resolvers are given."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from notify.channels.ssrf import (
    DestinationRefusedError,
    UnresolvedError,
    check_saved_url,
    parse_target,
    refusal,
    resolve_destination,
)

pytestmark = pytest.mark.security

REFUSED = {
    "127.0.0.1": "a loopback",
    "127.255.0.9": "a loopback",
    "10.1.2.3": "a private",
    "172.16.0.1": "a private",
    "192.168.1.1": "a private",
    "169.254.169.254": "a link-local",  # cloud metadata services
    "100.64.0.1": "a non-public",  # carrier-grade NAT
    "0.0.0.0": "an unspecified",
    "224.0.0.1": "a multicast",
    "239.255.255.250": "a multicast",
    "240.0.0.1": "a reserved",
    "255.255.255.255": "a reserved",
    "192.0.2.10": "a private",  # documentation
    "198.18.0.1": "a private",  # benchmarking
    "::1": "a loopback",
    "::": "an unspecified",
    "fe80::1": "a link-local",
    "fc00::1": "a private",
    "fd12:3456::1": "a private",
    "fec0::1": "a site-local",
    "ff02::1": "a multicast",
    "2001:db8::1": "a private",
    "::ffff:127.0.0.1": "a loopback",  # IPv4-mapped
    "::ffff:10.0.0.1": "a private",
    "::ffff:169.254.169.254": "a link-local",
    "2002:7f00:1::": "a loopback",  # 6to4 of 127.0.0.1
    "2002:a00:1::": "a private",  # 6to4 of 10.0.0.1
    "64:ff9b::7f00:1": "a loopback",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe": "a link-local",  # NAT64 of 169.254.169.254
    "::7f00:1": "a reserved",  # IPv4-compatible (deprecated)
}
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("address", "why"), sorted(REFUSED.items()))
def test_internal_addresses_are_refused(address: str, why: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def answers(*addresses: str) -> Any:
    """A resolver answering every name with ``addresses``, counting its calls."""

    def resolver(host: str, port: int, *_: Any) -> list[tuple[Any, ...]]:
        resolver.calls.append(host)  # type: ignore[attr-defined]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    resolver.calls = []  # type: ignore[attr-defined]
    return resolver


def unresolvable(*_: Any) -> list[tuple[Any, ...]]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "http://127.1:8080/hooks",
        "https://[::1]/hooks",
        "https://[::ffff:7f00:1]/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://10.0.0.7:8080/admin",
        "http://0.0.0.0:5432/",
        "http://2130706433/",
    ],
)
def test_saving_a_url_on_an_internal_address_is_refused(url: str) -> None:
    why = check_saved_url(url, allow_private=False, resolver=socket.getaddrinfo)
    assert why is not None
    assert "public internet addresses" in why


def test_saving_a_name_that_resolves_inside_is_refused() -> None:
    """``localhost``, or any name whose answers include one internal address."""
    assert check_saved_url("http://localhost:8080/", allow_private=False) is not None
    mixed = answers("93.184.216.34", "10.0.0.7")
    assert check_saved_url("https://shop.test/hooks", allow_private=False, resolver=mixed)


def test_saving_a_public_or_unresolvable_name_is_accepted() -> None:
    """A name that does not resolve yet is accepted: every send checks it again."""
    public = answers("93.184.216.34", "2001:4860:4860::8888")
    assert check_saved_url("https://shop.test/hooks", allow_private=False, resolver=public) is None
    assert check_saved_url("https://shop.test/", allow_private=False, resolver=unresolvable) is None


def test_allow_private_accepts_internal_addresses() -> None:
    assert check_saved_url("http://127.0.0.1:9/hooks", allow_private=True) is None


@pytest.mark.parametrize(
    "url", ["ftp://shop.test/", "https:///nohost", "http://[::1/", "http://shop.test:99999/"]
)
def test_urls_that_are_not_http_with_a_host_are_refused(url: str) -> None:
    assert check_saved_url(url, allow_private=True, resolver=unresolvable) is not None


def test_the_send_time_lookup_checks_every_answer_and_gives_the_first() -> None:
    target = parse_target("https://shop.test/hooks")
    resolver = answers("93.184.216.34", "93.184.216.35")
    address = resolve_destination(target, allow_private=False, resolver=resolver)
    assert str(address) == "93.184.216.34"
    assert resolver.calls == ["shop.test"]
    with pytest.raises(DestinationRefusedError):
        resolve_destination(
            target, allow_private=False, resolver=answers("93.184.216.34", "::ffff:127.0.0.1")
        )
    with pytest.raises(UnresolvedError):
        resolve_destination(target, allow_private=False, resolver=unresolvable)


def test_an_international_name_is_looked_up_and_sent_as_idna() -> None:
    target = parse_target("https://bücher.test:8443/in")
    assert (target.host, target.port, target.host_header) == (
        "xn--bcher-kva.test",
        8443,
        "xn--bcher-kva.test:8443",
    )
