"""``http.listen`` addresses: where the server binds, and what is loopback or every interface.

One reading of ``HOST:PORT`` for the server that binds it, the config checks that
judge it and the CLI that connects to it: an IPv6 host is written in brackets
(``[::1]:8080``), and an empty host binds loopback, like the default.
"""

from __future__ import annotations

import ipaddress

#: Names that always mean this machine's loopback interface.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Hosts a server binds for "every interface"; a client on this machine uses loopback.
WILDCARD_HOSTS = ("0.0.0.0", "::")


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` as (host without brackets, port); an empty host is ``127.0.0.1``."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, brackets allowed) is this machine only."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """Whether binding ``host`` listens on every interface."""
    return host.strip("[]") in WILDCARD_HOSTS


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
