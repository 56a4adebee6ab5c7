"""What a Sparkplug host remembers of one edge node: its session and its birth certificates.

A birth certificate (NBIRTH for the node, DBIRTH for each of its devices) defines an
**entity**: every metric it will report, by name, with its alias, datatype and unit.
Data messages are read against it; commands are encoded from it. A **node** holds
its session: the ``bdSeq`` that ties its NBIRTH to its NDEATH, the last sequence
number, whether the chain of numbers is intact (``synced``), and the rebirth request
it may be waiting for an answer to.

Outpost device ids: ``<group>:<node>`` for an edge node and
``<group>:<node>:<device>`` for a device behind it (Sparkplug ids may not hold
``/``, which Outpost ids may not either).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from devices.decoding import DecodeError
from devices.model import InvalidReading, check_device_id, check_identifier
from devices.sparkplug import payload as spb

# Names the mqtt-spb-wrapper library gives its metrics in births (and only there).
WRAPPER_PREFIXES = ("DATA/", "CMD/", "ATTR/")
BDSEQ = "bdSeq"
NODE_CONTROL = "Node Control/"
REBIRTH = "Node Control/Rebirth"


def device_id(group: str, node: str, device: str = "") -> str:
    """The Outpost device id of a Sparkplug edge node or device; DecodeError ``bad_device``."""
    return check_device_id(f"{group}:{node}:{device}" if device else f"{group}:{node}")


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric as its birth certificate defined it.

    ``reading`` is False for session bookkeeping (``bdSeq``, ``Node Control/…``)
    and for names Outpost cannot store (empty, not UTF-8, control characters):
    such metrics are still known, so their aliases never look unknown.
    """

    name: str
    alias: int | None
    datatype: int
    unit: str
    reading: bool


@dataclass(slots=True)
class Entity:
    """A node or device as its last birth certificate described it."""

    device_id: str
    names: dict[str, MetricDef]
    aliases: dict[int, MetricDef]
    prefixed: bool  # mqtt-spb-wrapper: births say DATA/x, data messages say x
    online: bool = True
    # The readings' tags by (the input's tags, unit): shared, never changed once made.
    tag_sets: dict[tuple[tuple[tuple[str, str], ...], str], dict[str, str]] = field(
        default_factory=dict
    )

    def resolve(self, metric: spb.Metric) -> tuple[MetricDef | None, bool]:
        """The definition a data metric refers to, and whether its bare name was mapped.

        By alias when it has one, else by name; on a prefixed entity an unknown
        name ``x`` is ``DATA/x`` when the birth defined that.
        """
        if metric.HasField("alias"):
            return self.aliases.get(metric.alias), False
        name = metric.name
        if not isinstance(name, str):
            return None, False
        found = self.names.get(name)
        if found is None and self.prefixed:
            return self.names.get("DATA/" + name), True
        return found, False

    def wire_name(self, name: str) -> str:
        """The name a command uses: a prefixed entity takes commands by their bare name."""
        if self.prefixed:
            for prefix in WRAPPER_PREFIXES:
                if name.startswith(prefix):
                    return name[len(prefix) :]
        return name


@dataclass(slots=True)
class Node:
    """One edge node's session, from the host's side."""

    group: str
    node: str
    device_id: str
    entity: Entity | None = None  # its NBIRTH (kept after a death, for commands)
    devices: dict[str, Entity] = field(default_factory=dict)  # by Sparkplug device id
    bdseq: int | None = None
    seq: int = 0  # the last sequence number seen
    synced: bool = False  # born, and every number since in order
    online: bool = False
    rebirth_at: int | None = None  # ns: a rebirth request is waiting for its NBIRTH
    rebirth_attempt: int = 0  # unanswered requests since the last birth
    suspect_death: bool = False  # an NDEATH whose bdSeq did not match the birth's
    noted: set[str] = field(default_factory=set)  # anomalies already logged

    def expected(self) -> int:
        return (self.seq + 1) % 256


def definitions(
    owner: str, metrics: Iterable[spb.Metric], max_metrics: int
) -> tuple[Entity, int | None]:
    """The entity a birth certificate defines, and its ``bdSeq`` metric's value (if any).

    DecodeError when the certificate cannot be used: more than ``max_metrics``
    metrics, an alias given to two metrics, a name defined twice.
    """
    names: dict[str, MetricDef] = {}
    aliases: dict[int, MetricDef] = {}
    bdseq: int | None = None
    for count, metric in enumerate(metrics, 1):
        if count > max_metrics:
            raise DecodeError("too_many_metrics", f"a birth certificate over {max_metrics} metrics")
        d = _definition(metric)
        if d.name in names and d.name:
            raise DecodeError("duplicate_metric", f"{owner}: metric {d.name!r} defined twice")
        if d.alias is not None:
            if d.alias in aliases:
                raise DecodeError(
                    "duplicate_alias",
                    f"{owner}: alias {d.alias} names both {aliases[d.alias].name!r} and {d.name!r}",
                )
            aliases[d.alias] = d
        if d.name:
            names[d.name] = d
        if d.name == BDSEQ and d.datatype in spb.INTEGERS:
            try:
                bdseq = int(spb.value_of(metric, d.datatype))
            except InvalidReading:
                bdseq = None
    named = [n for n in names if n != BDSEQ]
    prefixed = bool(named) and all(n.startswith(WRAPPER_PREFIXES) for n in named)
    return Entity(owner, names, aliases, prefixed), bdseq


def _definition(metric: spb.Metric) -> MetricDef:
    name = metric.name if isinstance(metric.name, str) else ""
    alias = metric.alias if metric.HasField("alias") else None
    datatype = metric.datatype if metric.HasField("datatype") else spb.UNKNOWN
    bare = name
    for prefix in WRAPPER_PREFIXES:
        if name.startswith(prefix):
            bare = name[len(prefix) :]
            break
    reading = bool(name) and name != BDSEQ and not bare.startswith(NODE_CONTROL)
    if reading:
        try:
            check_identifier("metric", name)
        except InvalidReading:
            reading = False
    return MetricDef(name, alias, datatype, spb.unit_of(metric), reading)
