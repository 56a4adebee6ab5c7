"""The device-convention contract: how one family of real devices speaks MQTT.

A *convention* (Zigbee2MQTT, Tasmota, ESPHome, Shelly Gen2, Homie, Outpost)
knows the topics its devices use and what their payloads mean. It is pure: no
I/O, no clock (arrival time comes in ``Message.received_ns``); the gateway
owns the MQTT client. Lifecycle, for one convention instance::

    conv = conventions.create("tasmota", options)        # options: the inputs:/devices: entry
    client.subscribe(conv.subscriptions())               # 1. listen to its topic space
    for message in incoming:
        readings = conv.decode(message)                  # 2. state topics → readings
        status = conv.availability(message)              # 3. LWT/availability → online/offline
    pending = PendingCommand(device, command_id, settings)
    client.subscribe(conv.ack_subscriptions(device))     # 4. before publishing the command
    for publish in conv.encode_command(device, command_id, settings):
        client.publish(publish.topic, publish.payload, publish.qos, publish.retain)
    tracker = AckTracker(conv, pending)
    for message in incoming:                             # 5. until acked/rejected or timeout
        outcome = tracker.feed(message)                  #    AckOutcome.ACKED / REJECTED / None

Rules every convention follows:

- ``decode`` raises only :class:`DecodeError` (= ``InvalidReading``); topics of
  the convention that carry no readings (availability, ``/set`` echoes, bridge
  chatter) decode to ``[]``; a topic it does not understand is ``unsupported_topic``.
- Numbers become floats, switches become bools (``"ON"``/``"OFF"`` of Tasmota,
  Zigbee2MQTT, ESPHome; ``true``/``false`` of Homie), other strings stay strings.
- A device id taken from a topic or payload, or handed to ``encode_command``,
  that contains ``+ # /`` or a control character (NUL included) is refused with
  reason ``bad_device``: it can never become part of a topic.
- ``confirm`` is stateless: it says which settings keys one message confirms
  (an id-carrying ack confirms all of them; a state echo confirms the keys whose
  reported value equals the requested one). :class:`AckTracker` accumulates.

The decoding helpers the conventions share are in :mod:`devices.conventions.helpers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from devices.decoding import DecodeError, Message
from devices.messages import Availability, Confirmation, PendingCommand, Publish
from devices.model import (
    Reading,
    check_device_id,
    check_topic_level,
)

__all__ = [
    "AckOutcome",
    "AckTracker",
    "Availability",
    "Confirmation",
    "Convention",
    "DecodeError",
    "Message",
    "PendingCommand",
    "Publish",
    "check_device_id",
    "check_topic_level",
]


class AckOutcome(StrEnum):
    """What a device said about a command (``sent`` and ``timed_out`` belong to the gateway)."""

    ACKED = "acked"
    REJECTED = "rejected"


class Convention(Protocol):
    """A device family's MQTT dialect. See the module docstring for the lifecycle."""

    name: str

    def subscriptions(self) -> list[str]:
        """Topic filters carrying this convention's readings and availability."""
        ...

    def availability_subscriptions(self) -> list[str]:
        """The subset of :meth:`subscriptions` that carries online/offline (LWT, availability)."""
        ...

    def decode(self, message: Message) -> list[Reading]:
        """Readings in a state message; ``[]`` for non-reading topics; raises DecodeError."""
        ...

    def availability(self, message: Message) -> Availability | None:
        """Online/offline if ``message`` is an availability message, else None."""
        ...

    def encode_command(
        self, device: str, command_id: str, settings: Mapping[str, Any]
    ) -> list[Publish]:
        """The messages that ask ``device`` to apply ``settings``; raises InvalidReading."""
        ...

    def ack_subscriptions(self, device: str) -> list[str]:
        """Topic filters on which acknowledgements (or state echoes) for ``device`` arrive."""
        ...

    def confirm(self, message: Message, pending: PendingCommand) -> Confirmation | None:
        """What ``message`` says about ``pending``; None when it is unrelated."""
        ...


class AckTracker:
    """Accumulates confirmations for one pending command until every key is confirmed.

    A rejection ends the command at once. Conventions with a command id
    (Outpost, Shelly) confirm every key in one message; echo conventions
    (Tasmota, Zigbee2MQTT, ESPHome, Homie) may need one message per key.
    """

    def __init__(self, convention: Convention, pending: PendingCommand) -> None:
        self.convention = convention
        self.pending = pending
        self.remaining = set(pending.settings)
        self.reason = ""
        self.outcome: AckOutcome | None = None

    def feed(self, message: Message) -> AckOutcome | None:
        if self.outcome is not None:
            return self.outcome
        confirmation = self.convention.confirm(message, self.pending)
        if confirmation is None:
            return None
        if confirmation.rejected:
            self.reason = confirmation.reason
            self.outcome = AckOutcome.REJECTED
            return self.outcome
        self.remaining -= confirmation.keys
        if not self.remaining:
            self.outcome = AckOutcome.ACKED
        return self.outcome
