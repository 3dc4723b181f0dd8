"""Where the platform may send requests of its own (alarm webhooks): not to this host, link-local addresses or
cloud metadata services unless the configuration allows those networks.

A webhook URL is written by whoever may edit the configuration, and the platform posts alarm data to it from
inside the plant network: without this, a URL such as http://169.254.169.254/... or http://127.0.0.1:2019/...
turns the platform into a proxy towards services that trust their local callers (server-side request forgery).
Private (RFC 1918) networks stay allowed: plants post to systems of their own. The host name is resolved at each
delivery and every address it gives is checked (a name pointing at a refused address is refused); redirects are
not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

METADATA = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"),
            ipaddress.ip_network("100.100.100.200/32"))  # AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba


def refused_address(addr: str, allowed: list | tuple = ()) -> str | None:
    """Why requests may not go to this address, or None."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(n, strict=False) for n in allowed):
        return None
    if any(ip in n for n in METADATA):
        return f"{ip} is a cloud metadata address"
    for what, bad in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local), ("unspecified", ip.is_unspecified),
                      ("multicast", ip.is_multicast), ("reserved", ip.is_reserved)):
        if bad:
            return f"{ip} is a {what} address"
    return None


def check_url(url: str, allowed: list | tuple = (), resolve: bool = True) -> str | None:
    """Why this URL may not be posted to, or None. resolve=False checks only what the URL itself says."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        return f"not a valid URL ({e})"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme or 'none'!r}: only http and https"
    host = parts.hostname
    if not host:
        return "the URL names no host"
    if parts.username or parts.password:
        return "credentials in the URL: use a token in the path or a receiver that needs none"
    try:
        return refused_address(host, allowed)
    except ValueError:
        pass  # a name, not an address
    if host.rstrip(".").lower() in ("localhost", "metadata", "metadata.google.internal") or host.endswith(".localhost"):
        if not allowed:
            return f"{host} names this host or a metadata service"
    if not resolve:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        return f"{host} does not resolve ({e})"
    for info in infos:
        why = refused_address(info[4][0], allowed)
        if why:
            return f"{host} resolves to {why}"
    return None
