"""Sparkplug B edge nodes (Ignition, Eclipse Tahu, Node-RED): the convention over the host state.

Unlike the other conventions Sparkplug keeps state: what a message means depends on
the birth certificates and sequence numbers before it (:mod:`devices.sparkplug.host`).
One :class:`SparkplugConvention` holds one :class:`~devices.sparkplug.host.SparkplugHost`;
the gateway shares a single instance between its inputs (which decode) and its
command dispatcher (which encodes commands with the learned aliases and datatypes,
and reads their acknowledgement from the data that follows), and carries out what
the host asks besides readings (rebirth requests, online/offline) itself.

- ``decode``: the readings of a birth or data message; a refusal (sequence gap,
  unknown alias, data before birth …) raises DecodeError with its reason.
- ``availability``: always None. A Sparkplug device's state follows from its
  session (births and deaths read in order with the data), never from one message
  alone: the gateway takes it from the host's steps.
- Commands: settings are metric names as the birth certificate gives them
  (``Outputs/Speed``), written as one DCMD (NCMD for an edge node) with the birth's
  aliases and checked against the birth's datatypes; the ack is the DDATA (NDATA)
  that reports every requested value.

Device ids: ``<group>:<node>`` for an edge node, ``<group>:<node>:<device>`` for a
device. Options: ``namespace`` (default ``spBv1.0``, the only one defined).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from devices.conventions.base import (
    Availability,
    Confirmation,
    DecodeError,
    Message,
    PendingCommand,
    Publish,
    check_device_id,
)
from devices.conventions.helpers import same_value
from devices.model import InvalidReading, Reading
from devices.sparkplug import payload as spb
from devices.sparkplug import topic as topics
from devices.sparkplug.host import SparkplugHost
from devices.sparkplug.topic import NAMESPACE, build


class SparkplugConvention:
    name = "sparkplug"

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        *,
        host: SparkplugHost | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        options = options or {}
        if options.get("namespace", NAMESPACE) != NAMESPACE:
            raise ValueError(f"namespace must be {NAMESPACE!r} (Sparkplug B)")
        self.host = host or SparkplugHost()
        # Commands must carry a timestamp (Sparkplug 3.0.0 §6.4.12); the contract's
        # encode_command has no time argument, so this convention reads the wall clock.
        self._clock = clock

    def subscriptions(self) -> list[str]:
        return [f"{NAMESPACE}/#"]

    def availability_subscriptions(self) -> list[str]:
        return []

    def decode(self, message: Message) -> list[Reading]:
        step = self.host.receive(
            message.topic, message.payload, message.received_ns, message.tags, message.trace_id
        )
        if step.refusal is not None:
            raise step.refusal
        return step.readings

    def availability(self, message: Message) -> Availability | None:
        return None

    def encode_command(
        self, device: str, command_id: str, settings: Mapping[str, Any]
    ) -> list[Publish]:
        check_device_id(device)
        return self.host.command(device, settings, self._clock())

    def ack_subscriptions(self, device: str) -> list[str]:
        """The data topics ``device`` may answer on, before any birth says which it is.

        An id ``a:b:c`` is group ``a``, node ``b``, device ``c`` — unless the Sparkplug
        ids themselves hold ``:``; every way of splitting the id is listed.
        """
        parts = check_device_id(device).split(":")
        filters = []
        for i in range(1, len(parts)):
            group, rest = ":".join(parts[:i]), parts[i:]
            filters.append(build(group, "NDATA", ":".join(rest)))
            for j in range(1, len(rest)):
                filters.append(build(group, "DDATA", ":".join(rest[:j]), ":".join(rest[j:])))
        if not filters:
            raise DecodeError("bad_device", f"{device!r} is not <group>:<node>[:<device>]")
        return filters

    def confirm(self, message: Message, pending: PendingCommand) -> Confirmation | None:
        """The settings of ``pending`` that a data message reports at their requested value."""
        try:
            parsed = topics.parse(message.topic)
            node, sp_device, entity = self.host.target(pending.device)
            if parsed is None or parsed.kind not in topics.DATA:
                return None
            if (parsed.group, parsed.node, parsed.device) != (node.group, node.node, sp_device):
                return None
            payload = spb.parse(message.payload)
        except InvalidReading:
            return None
        confirmed = set()
        for metric in payload.metrics:
            d, _ = entity.resolve(metric)
            if d is None:
                continue
            try:
                value = spb.value_of(metric, d.datatype)
            except InvalidReading:
                continue
            reported = entity.wire_name(d.name)
            for key, requested in pending.settings.items():
                if entity.wire_name(key) == reported and same_value(requested, value):
                    confirmed.add(key)
        return Confirmation(frozenset(confirmed)) if confirmed else None
