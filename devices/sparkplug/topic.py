"""Sparkplug B topics: ``spBv1.0/<group>/<type>/<node>[/<device>]``, ``spBv1.0/STATE/<host>``.

Parsing is strict (Sparkplug 3.0.0 §4.1): the namespace, a known message type, and a
device id exactly on the types that carry one (DBIRTH, DDEATH, DDATA, DCMD). An id
may hold any UTF-8 but ``+``, ``/`` and ``#`` (the split already guarantees ``/``).
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.decoding import DecodeError

NAMESPACE = "spBv1.0"

NODE_TYPES = frozenset({"NBIRTH", "NDEATH", "NDATA", "NCMD"})
DEVICE_TYPES = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})
BIRTHS = frozenset({"NBIRTH", "DBIRTH"})
DEATHS = frozenset({"NDEATH", "DDEATH"})
DATA = frozenset({"NDATA", "DDATA"})
COMMANDS = frozenset({"NCMD", "DCMD"})


@dataclass(frozen=True, slots=True)
class Topic:
    """One parsed Sparkplug topic; ``device`` is ``""`` on node-level message types."""

    group: str
    kind: str
    node: str
    device: str = ""

    def __str__(self) -> str:
        return build(self.group, self.kind, self.node, self.device)


def parse(topic: str) -> Topic | None:
    """The topic's parts; None for ``spBv1.0/STATE/<host>``; DecodeError if not Sparkplug B."""
    levels = topic.split("/")
    if levels[0] != NAMESPACE or len(levels) < 3:
        raise DecodeError("unsupported_topic", f"not a Sparkplug B topic: {topic[:120]}")
    if levels[1] == "STATE" and len(levels) == 3:
        return None
    if len(levels) not in (4, 5):
        raise DecodeError("unsupported_topic", f"not a Sparkplug B topic: {topic[:120]}")
    group, kind, node = levels[1], levels[2], levels[3]
    device = levels[4] if len(levels) == 5 else ""
    node_level, device_level = kind in NODE_TYPES, kind in DEVICE_TYPES
    if not ((node_level and len(levels) == 4) or (device_level and len(levels) == 5)):
        raise DecodeError("unsupported_topic", f"not a Sparkplug B message type: {topic[:120]}")
    for part in (group, node, device) if device else (group, node):
        if not part or "+" in part or "#" in part:
            raise DecodeError("unsupported_topic", f"bad Sparkplug id in {topic[:120]}")
    return Topic(group, kind, node, device)


def build(group: str, kind: str, node: str, device: str = "") -> str:
    base = f"{NAMESPACE}/{group}/{kind}/{node}"
    return f"{base}/{device}" if device else base


def state_topic(host_id: str) -> str:
    """Where a primary host application announces itself (Sparkplug 3.0.0 §4.2.1)."""
    return f"{NAMESPACE}/STATE/{host_id}"
