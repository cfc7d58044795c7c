"""Where kakin may send a webhook: the server-side request forgery (SSRF) rule.

An endpoint URL is typed by whoever holds an admin key; kakin's worker then makes
requests to it from inside the seller's network. In live mode (a live Stripe key) a
URL whose host resolves to a loopback, private, link-local (the cloud metadata service
at 169.254.169.254 among them), multicast, reserved or otherwise non-public address is
refused, at registration and again before every try: DNS can change after
registration. Every address the name resolves to must be public, so a name with one
public and one private address is refused too. In test mode loopback is allowed, so
the tests and the demo can receive on 127.0.0.1; the rest of the rule still holds.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from kakin.services.errors import InvalidRequestError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Cloud metadata services that are not in a link-local range (Alibaba's; AWS's IPv6 one).
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("100.100.100.200", "fd00:ec2::254"))


class TargetRefusedError(InvalidRequestError):
    """The URL may not receive webhooks (422 at registration; a refused try at delivery)."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver, as the request will)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def why_refused(address: Address, *, live_mode: bool) -> str | None:
    """Why ``address`` may not receive a webhook, or None if it may."""
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address" if live_mode else None
    for reason, test in (
        ("an unspecified address", address.is_unspecified),
        ("a link-local address (the cloud metadata service lives there)", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
    ):
        if test:
            return reason
    return None if address.is_global else "not a public address"


def check_url(url: str, *, live_mode: bool, resolver: Resolver = resolve) -> None:
    """Refuse (``TargetRefusedError``, naming the URL and why) a URL kakin may not call."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefusedError(f"webhook URL {url!r} must be an http or https URL with a host")
    if parts.username or parts.password:
        raise TargetRefusedError(f"webhook URL {url!r} must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefusedError(f"webhook URL {url!r} has an invalid port") from None
    host = parts.hostname
    try:
        addresses, literal = [ipaddress.ip_address(host)], True
    except ValueError:
        try:
            found = resolver(host, port)
        except (OSError, UnicodeError) as error:
            raise TargetRefusedError(
                f"webhook URL {url!r}: {host} does not resolve ({error})"
            ) from None
        addresses, literal = [ipaddress.ip_address(a.split("%")[0]) for a in found], False
    if not addresses:
        raise TargetRefusedError(f"webhook URL {url!r}: {host} does not resolve")
    for address in addresses:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        reason = why_refused(address, live_mode=live_mode)
        if reason is not None:
            mode = "in live mode " if live_mode else ""
            resolved = "" if literal else f"{host} resolves to "
            raise TargetRefusedError(
                f"webhook URL {url!r} is refused: {resolved}{address} is {reason}; "
                f"{mode}webhooks go only to public addresses"
            )
