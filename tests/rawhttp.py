"""HTTP/1.1 by hand, for tests that send what no well-behaved client would.

``request`` sends exactly the method, target, headers and body it is given (no
Host or Content-Length it was not asked for, no quoting) on a fresh connection
and reads the whole answer; a live stream (``text/event-stream``) is read up to
its headers only. A closed connection without an answer raises, which is what
the attack tests look for.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def request(
    port: int,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    host: str | None = "127.0.0.1",
    timeout: float = 10.0,
) -> Answer:
    """One request to 127.0.0.1:``port``; ``host`` is the Host header (None: none sent)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        all_headers = dict(headers or {})
        if host is not None:
            all_headers.setdefault("Host", f"{host}:{port}")
        if body is not None:
            all_headers.setdefault("Content-Length", str(len(body)))
        for name, value in all_headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        answer_headers = {k.lower(): v for k, v in resp.getheaders()}
        streaming = answer_headers.get("content-type", "").startswith("text/event-stream")
        data = b"" if streaming or method == "HEAD" else resp.read()
        return Answer(resp.status, answer_headers, data)
    finally:
        conn.close()


def parse(raw: bytes) -> Answer:
    """An answer read off a socket by hand (status line, headers, body)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status, headers, body)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
