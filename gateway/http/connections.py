"""The HTTP server's connections: how many at once, and how long one may keep a slot.

aiohttp answers requests; :class:`ConnectionGuard` decides which connections it
gets and for how long. Each accepted socket gets a small protocol in front of
aiohttp's:

- past ``http.max_connections`` open at once a new connection is answered ``503``
  and closed — after its request head has arrived, or a second, so that the client
  reads the answer rather than a reset. At most :data:`MAX_REFUSING` wait to be
  closed that way; beyond them a connection is closed without a word. So the
  server never holds more than ``max_connections + MAX_REFUSING`` descriptors.
- a connection that has not sent a whole request head ``http.header_timeout``
  after it opened is answered ``408`` and closed: connections that send nothing,
  or their headers a byte at a time, cannot pile up until the process runs out of
  file descriptors.
- a connection whose client stops reading its answer (the socket's send buffer
  stays full, the live stream included) for ``http.idle_timeout`` is aborted.

A kept-alive connection waiting for its next request is closed by aiohttp itself
after ``http.idle_timeout`` (its keep-alive timeout); a request body that stops
arriving is the handler's business (:mod:`.inputs`). A request aiohttp cannot parse
is answered 400 by aiohttp and logged as one warning line, not an error with a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

from gateway.http.origin import SECURITY_HEADERS

#: How long a refused connection may take to send its request head before it is closed.
REFUSED_LINGER = 1.0
#: Refused connections waiting for their request head at most.
MAX_REFUSING = 64
BACKLOG = 128


def raw_response(status: int, reason: str, message: str, *extra: str) -> bytes:
    """A whole HTTP/1.1 answer with a JSON error body, for connections aiohttp never sees."""
    body = json.dumps({"error": message}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close", *extra,
            *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items())]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + body


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot parse (answered 400) as an error with a traceback;
    the fault is the client's, so it becomes one warning line (throttled like the rest of
    aiohttp's lines: :func:`gateway.logsetup.throttle_library_logs`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = (f"{record.getMessage()}: malformed, answered {exc.code}: "
                          f"{str(exc.message)[:200]}")
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def quiet_malformed_requests() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedRequests) for f in logger.filters):
        logger.addFilter(_MalformedRequests())


class ConnectionGuard:
    """Listens on the server's address and hands aiohttp the connections it admits."""

    def __init__(self, max_connections: int, header_timeout: float, idle_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.refused = 0  # answered 503: too many open
        self.header_timeouts = 0  # answered 408: no request head in time
        self.stalled = 0  # aborted: the client stopped reading
        self._admitted: dict[asyncio.BaseTransport, _Admitted] = {}
        self._refusing: set[_Refused] = set()
        self._handler: Callable[[], asyncio.Protocol] | None = None
        self._listener: asyncio.Server | None = None

    @property
    def open(self) -> int:
        return len(self._admitted)

    async def listen(self, handler: Callable[[], asyncio.Protocol], host: str, port: int) -> None:
        """Accept connections on ``host:port``; ``handler()`` makes aiohttp's protocol."""
        self._handler = handler
        quiet_malformed_requests()
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._protocol, host, port, backlog=BACKLOG,
                                                  reuse_address=True)

    async def close(self) -> None:
        """Stop accepting and drop the refused connections (aiohttp closes its own)."""
        if self._listener is not None:
            self._listener.close()
        for refused in list(self._refusing):
            refused.close()

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        """A request head arrived on ``transport``: its header timeout no longer applies."""
        admitted = self._admitted.get(transport) if transport is not None else None
        if admitted is not None:
            admitted.cancel_header_timer()

    def _protocol(self) -> asyncio.Protocol:
        return _Incoming(self)

    def _accept(self, transport: asyncio.Transport) -> asyncio.Protocol | None:
        """The protocol that serves a new connection, or None when it was closed at once."""
        assert self._handler is not None
        if len(self._admitted) < self.max_connections:
            admitted = _Admitted(self, transport, self._handler())
            self._admitted[transport] = admitted
            return admitted
        self.refused += 1
        if len(self._refusing) >= MAX_REFUSING:
            transport.close()
            return None
        refused = _Refused(self, transport)
        self._refusing.add(refused)
        return refused

    def _forget(self, transport: asyncio.BaseTransport, protocol: asyncio.Protocol) -> None:
        self._admitted.pop(transport, None)
        if isinstance(protocol, _Refused):
            self._refusing.discard(protocol)


class _Incoming(asyncio.Protocol):
    """What the event loop talks to: the admitted or refused connection behind it."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._inner = self._guard._accept(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._inner.connection_lost(exc)


class _Admitted(asyncio.Protocol):
    """aiohttp's protocol for this connection, with the header and stalled-reader timers."""

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport,
                 handler: asyncio.Protocol) -> None:
        self._guard = guard
        self._transport = transport
        self._handler = handler
        quiet_malformed_requests()
        loop = asyncio.get_running_loop()
        self._header_timer: asyncio.TimerHandle | None = loop.call_later(
            guard.header_timeout, self._header_timeout)
        self._stall_timer: asyncio.TimerHandle | None = None
        handler.connection_made(transport)

    def cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._transport.is_closing():
            return
        self._guard.header_timeouts += 1
        seconds = f"{self._guard.header_timeout:g}"
        self._transport.write(raw_response(
            408, "Request Timeout",
            f"no complete request head within {seconds} s (http.header_timeout)"))
        self._transport.close()

    def _stalled(self) -> None:
        self._stall_timer = None
        self._guard.stalled += 1
        self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def pause_writing(self) -> None:
        if self._stall_timer is None:
            loop = asyncio.get_running_loop()
            self._stall_timer = loop.call_later(self._guard.idle_timeout, self._stalled)
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_header_timer()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        self._guard._forget(self._transport, self)
        self._handler.connection_lost(exc)


class _Refused(asyncio.Protocol):
    """A connection past the cap: 503 at once, closed once its request head is read."""

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport) -> None:
        self._guard = guard
        self._transport = transport
        self._tail = b""
        transport.write(raw_response(
            503, "Service Unavailable",
            f"the gateway has {guard.max_connections} connections open "
            "(http.max_connections); try again shortly", "Retry-After: 1"))
        self._timer = asyncio.get_running_loop().call_later(REFUSED_LINGER, self.close)

    def close(self) -> None:
        self._timer.cancel()
        self._transport.close()

    def data_received(self, data: bytes) -> None:
        seen = self._tail + data
        if b"\r\n\r\n" in seen or b"\n\n" in seen:
            self.close()
        self._tail = seen[-3:]

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        self._guard._forget(self._transport, self)
