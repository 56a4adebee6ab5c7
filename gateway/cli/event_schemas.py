"""The events Outpost publishes or writes, as schemas (``outpost schema``).

These pydantic models are the documented shape of each event the gateway
builds itself; the alert event's schema comes from the rules engine that emits
it (:func:`rules.alert_event_schema`), so there is one definition of each.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordedReading(_Event):
    """One line of ``outpost record`` output and ``rules replay`` input."""

    ts: int = Field(description="reading time, ns since the epoch (UTC)")
    device: str
    metric: str
    value: float | bool | str
    tags: dict[str, str] = Field(default_factory=dict)


class DeadLetter(_Event):
    """Published on ``outpost/deadletter`` for input that cannot become a stored reading."""

    topic: str = Field(description="topic the message came on")
    payload: str = Field(
        description="the payload (UTF-8 text, or base64 when encoding says so), at most 4 KiB"
    )
    reason: str = Field(description="short stable reason, e.g. bad_json, non_finite, too_large")
    detail: str = ""
    ts: str = Field(description="when it was refused, RFC 3339 UTC with milliseconds")
    encoding: Literal["base64"] | None = None
    truncated: bool | None = None
    size: int | None = Field(None, description="original payload size when truncated")


class Command(_Event):
    """Published on ``devices/{device}/set`` (outpost convention): an id plus the settings."""

    model_config = ConfigDict(extra="allow")
    id: str


class CommandAck(_Event):
    """Published by a device on ``devices/{device}/ack``."""

    model_config = ConfigDict(extra="allow")
    id: str
    ok: bool
    error: str | None = None


EVENTS: dict[str, type[BaseModel]] = {
    "reading": RecordedReading,
    "deadletter": DeadLetter,
    "command": Command,
    "command-ack": CommandAck,
}
