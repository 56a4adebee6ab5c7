"""Where line protocol goes: the one-method contract of an InfluxDB API.

Lifecycle: ``open()`` → ``write(body)`` any number of times → ``close()``.
``write`` either returns (InfluxDB answered 2xx: the points are stored) or
raises :class:`WriteError`, whose ``kind`` tells the writer what to do:

- ``bad_points`` (400, 422): some line is refused — split the batch to find it
- ``too_large`` (413): split the batch
- ``auth`` (401, 403): keep the data, retry slowly, tell the user
- ``throttled`` (429, 503): wait ``retry_after`` seconds if given
- ``server`` (other 5xx), ``connection`` (no answer): back off and retry
- ``not_found`` (404): the database or bucket is missing
"""

from __future__ import annotations

from typing import Protocol


class WriteError(Exception):
    def __init__(
        self, kind: str, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def splittable(self) -> bool:
        return self.kind in ("bad_points", "too_large")


def kind_of(status: int) -> str:
    if status in (400, 422):
        return "bad_points"
    if status == 413:
        return "too_large"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status in (429, 503):
        return "throttled"
    return "server"


def encode_body(body: str) -> bytes:
    """``body`` as UTF-8; text that has none (a lone surrogate) is refused like a bad point."""
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise WriteError(
            "bad_points", f"line protocol is not UTF-8 ({exc.reason} at {exc.start})"
        ) from None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (only the delta-seconds form is used)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, min(seconds, 300.0))


class InfluxSink(Protocol):
    async def open(self) -> None: ...

    async def write(self, body: str) -> None: ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """Where this sink writes, for logs; never includes a secret."""
        ...
