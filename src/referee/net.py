"""Network rules shared by the layers above: which host names mean this machine for certain."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether ``host`` is surely this machine: ``localhost`` itself or a literal loopback address
    (127.0.0.0/8, ::1, with or without brackets).

    Keys and an open labelling page rely on the answer, so it takes nothing on trust: names under
    ``.localhost`` should resolve to loopback (RFC 6761), but a resolver need not honour that, and a name
    with a trailing dot (``localhost.``) is looked up in DNS.
    """
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is a literal IPv4 or IPv6 address (brackets allowed), not a name."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
