"""The records a device convention exchanges with the gateway.

:class:`Publish` (a message to send), :class:`Availability` (a device's online or
offline), :class:`PendingCommand` and :class:`Confirmation` (a command and what a
device's answer says about it). They live apart from the convention registry
(:mod:`devices.conventions`) so that the Sparkplug state machine
(:mod:`devices.sparkplug.host`), which the registry's Sparkplug convention imports,
can use them too. :mod:`devices.conventions.base` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Publish:
    """One MQTT message a convention wants published."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class PendingCommand:
    """A command waiting for its acknowledgement: what was asked of which device."""

    device: str
    command_id: str
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Availability:
    """A device went online or offline (from an LWT, availability or state topic).

    ``session``: the word of a session-keeping convention (Sparkplug's births and
    deaths). Such a device reports by exception, so while its session is up it is
    online however long it stays silent.
    """

    device: str
    online: bool
    session: bool = False


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What one incoming message says about a pending command.

    ``keys`` are the settings keys it confirms; ``rejected`` means the device
    refused the command (``reason`` says why, as the device put it).
    """

    keys: frozenset[str] = frozenset()
    rejected: bool = False
    reason: str = ""

    @classmethod
    def everything(cls, pending: PendingCommand) -> Confirmation:
        return cls(frozenset(pending.settings))

    @classmethod
    def refusal(cls, reason: str) -> Confirmation:
        return cls(frozenset(), True, reason)
