"""Which names the server answers to, and the headers every answer carries.

DNS rebinding: a web page the operator opens (``evil.example``) points its own
name at the gateway's address a moment later; the browser then takes the gateway
for ``evil.example``'s own server and lets the page read whatever it reads
without a token. The browser still sends ``Host: evil.example``, so the server
answers only the names it is known by (:class:`AllowedHosts`): loopback names, the
listen address, ``http.allowed_hosts`` — and any IP address when it listens on
every interface, since a page cannot make a browser send an address as Host for
a name of its own.

Every answer, errors and static files included, carries :data:`SECURITY_HEADERS`:
only the gateway's own files run in the page, no other site may frame it or read
its answers, and no URL leaks to a linked site. No ``Access-Control-*`` header is
ever sent: other origins cannot read the API from a browser.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from gateway.config.addresses import LOOPBACK_NAMES, is_ip_address, is_wildcard, split_listen

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def host_name(header: str) -> str:
    """The name in a ``Host`` header: without the port, brackets or a final dot, lower case."""
    header = header.strip()
    if header.startswith("["):
        name = header[1:].partition("]")[0]
    elif header.count(":") == 1:
        name = header.partition(":")[0]
    else:
        name = header
    return name.rstrip(".").lower()


class AllowedHosts:
    """The names in a ``Host`` header the server answers to."""

    def __init__(self, listen: str, extra: Iterable[str] = ()) -> None:
        bind, _ = split_listen(listen)
        self._any_address = is_wildcard(bind)
        self.names = frozenset({*LOOPBACK_NAMES, *(n.lower() for n in extra)}
                               | (set() if self._any_address else {bind.lower()}))

    def describe(self) -> str:
        names = ", ".join(sorted(self.names))
        return f"{names} and any IP address" if self._any_address else names

    def allows(self, header: str) -> bool:
        name = host_name(header)
        return name in self.names or (self._any_address and is_ip_address(name))


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer carries :data:`SECURITY_HEADERS`."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
