"""The Sparkplug B host application's state machine: messages in, readings and actions out.

Pure, like the rest of ``devices/``: no I/O, no clock, no threads. The gateway
(:mod:`gateway.devices_runtime.sparkplug`) feeds it every message of the Sparkplug
namespace in the order the broker delivered them, and carries out what each
:class:`Step` asks: store the readings, set devices online or offline, publish the
rebirth requests, dead-letter a refused message, log the notes::

    host = SparkplugHost()
    step = host.receive(topic, payload, now_ns)   # → Step(readings, availability,
                                                  #        publishes, notes, refusal)
    step = host.tick(now_ns)                      # about once a second: rebirth timeouts
    host.command(device, settings, now_ns)        # → [Publish] (DCMD / NCMD)
    host.target(device)                           # → the node and birth of a device id

**Per edge node** (:class:`devices.sparkplug.session.Node`)::

    unborn ──NBIRTH──► synced ──gap / unknown alias / datatype changed──► awaiting rebirth
      ▲                  │  ▲                                                   │
      │                  │  └──────────────────────NBIRTH───────────────────────┘
      └──NDEATH (bdSeq of the birth)──┘

- **Births** define the metrics (name, alias, datatype, ``engUnit``) and carry their
  current values, which become readings. An NBIRTH starts the sequence numbers
  (0..255, then 0 again) and forgets the devices' births: each device is offline
  until its DBIRTH comes again.
- **Data** (NDATA, DDATA) must carry the next sequence number and only metrics the
  birth defined. A message that does not is **refused** (the gateway dead-letters
  it: ``sequence_gap``, ``unknown_alias``, ``datatype_changed``) and so is every
  following one (``awaiting_rebirth``) until a new NBIRTH, because Outpost can no
  longer tell what the aliases mean or what was missed: it never guesses. Data from
  a node or device without a birth is refused as ``before_birth``.
- **Rebirth requests** (an NCMD writing ``Node Control/Rebirth = true``) go out on
  the first refusal, then wait ``wait(attempt)`` seconds for the NBIRTH; unanswered,
  the next refusal asks again and the wait grows (the gateway passes its backoff).
- **Deaths.** An NDEATH whose ``bdSeq`` matches the NBIRTH's sets the node and its
  devices offline; a DDEATH sets its device offline. An NDEATH with another
  ``bdSeq`` is, by the specification, a late one from an earlier session and changes
  nothing, but some nodes get ``bdSeq`` wrong: Outpost asks that node for a rebirth
  and, if it does not answer, takes the death as real.

Misbehaviour of real edge nodes is reported once per node in ``Step.notes`` and
counted every time in :attr:`SparkplugHost.anomalies`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devices.decoding import DecodeError
from devices.messages import Availability, Publish
from devices.model import InvalidReading, Reading, check_value
from devices.sparkplug import payload as spb
from devices.sparkplug import topic as topics
from devices.sparkplug.session import (
    BDSEQ,
    REBIRTH,
    Entity,
    MetricDef,
    Node,
    definitions,
    device_id,
)

MAX_NODES = 10_000
MAX_DEVICES_PER_NODE = 1_000
MAX_METRICS = 10_000  # per birth certificate
NS = 1_000_000_000


def doubling(base: float = 5.0, cap: float = 300.0) -> Callable[[int], float]:
    """A wait in seconds for the answer to rebirth request ``attempt`` (0 first)."""
    return lambda attempt: min(cap, base * 2.0 ** min(attempt, 30))


@dataclass(slots=True)
class Step:
    """What one message (or a tick) asks of the gateway."""

    readings: list[Reading] = field(default_factory=list)
    availability: list[Availability] = field(default_factory=list)
    publishes: list[Publish] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # misbehaviour seen first on a node
    refusal: InvalidReading | None = None  # dead-letter the message with this reason


class SparkplugHost:
    """Every edge node's session; see the module docstring."""

    def __init__(
        self,
        *,
        wait: Callable[[int], float] | None = None,
        max_nodes: int = MAX_NODES,
        max_devices: int = MAX_DEVICES_PER_NODE,
        max_metrics: int = MAX_METRICS,
    ) -> None:
        self._wait = wait or doubling()
        self._max_nodes = max_nodes
        self._max_devices = max_devices
        self._max_metrics = max_metrics
        self.nodes: dict[tuple[str, str], Node] = {}
        # Outpost device id → (node, Sparkplug device id or "" for the node itself).
        self._targets: dict[str, tuple[Node, str]] = {}
        self.rebirths: Counter[str] = Counter()  # rebirth requests sent, by reason
        self.anomalies: Counter[str] = Counter()  # edge-node misbehaviour, by kind
        self.skipped: Counter[str] = Counter()  # metrics not stored, by reason

    # --- messages ------------------------------------------------------------------

    def receive(
        self,
        topic: str,
        payload: bytes,
        now_ns: int,
        tags: Mapping[str, str] | None = None,
        trace_id: str = "",
    ) -> Step:
        """One message of the Sparkplug namespace, in broker order."""
        step = Step()
        try:
            parsed = topics.parse(topic)
            if parsed is None or parsed.kind in topics.COMMANDS:
                return step  # a host's STATE, or commands (ours and other hosts')
            message = spb.parse(payload)
            handler = _HANDLERS[parsed.kind]
            handler(self, step, parsed, message, _Context(topic, now_ns, tags or {}, trace_id))
        except InvalidReading as exc:
            step.readings = []
            step.refusal = exc
        return step

    def tick(self, now_ns: int) -> Step:
        """Rebirth requests whose wait is over are unanswered; a suspect death is then real."""
        step = Step()
        for node in list(self.nodes.values()):
            if node.rebirth_at is not None and now_ns >= self._due(node):
                self._unanswered(step, node)
        return step

    def _nbirth(self, step: Step, t: topics.Topic, msg: spb.Payload, ctx: _Context) -> None:
        node = self._node(t)
        if not msg.HasField("seq") or msg.seq > 255:
            raise DecodeError("bad_birth", f"{node.device_id}: NBIRTH without a sequence number")
        entity, bdseq = definitions(node.device_id, msg.metrics, self._max_metrics)
        self._claim(node.device_id, node, "")
        if bdseq is None:
            self._note(step, node, "no_bdseq", "its NBIRTH has no bdSeq metric")
        if REBIRTH not in entity.names and "CMD/" + REBIRTH not in entity.names:
            self._note(step, node, "no_rebirth_metric", f"its NBIRTH has no {REBIRTH!r} metric")
        if entity.prefixed:
            self._note(
                step,
                node,
                "prefixed_names",
                "its births name metrics DATA/x, CMD/x, ATTR/x (mqtt-spb-wrapper): "
                "a data metric named x is read as DATA/x and commands use bare names",
            )
        for old in node.devices.values():  # each device must be born again in this session
            if old.online:
                old.online = False
                step.availability.append(Availability(old.device_id, False, session=True))
        node.devices = {}
        node.entity, node.bdseq, node.seq = entity, bdseq, msg.seq
        node.synced = node.online = True
        node.rebirth_at, node.rebirth_attempt, node.suspect_death = None, 0, False
        self._claim(node.device_id, node, "")
        step.availability.append(Availability(node.device_id, True, session=True))
        self._readings(step, node, entity, msg, ctx, birth=True)

    def _dbirth(self, step: Step, t: topics.Topic, msg: spb.Payload, ctx: _Context) -> None:
        node = self._synced(step, t, msg, ctx)
        owner = device_id(t.group, t.node, t.device)
        if t.device not in node.devices and len(node.devices) >= self._max_devices:
            raise DecodeError("too_many_devices", f"{node.device_id}: over {self._max_devices}")
        entity, _ = definitions(owner, msg.metrics, self._max_metrics)
        self._claim(owner, node, t.device)
        node.devices[t.device] = entity
        step.availability.append(Availability(owner, True, session=True))
        self._readings(step, node, entity, msg, ctx, birth=True)

    def _data(self, step: Step, t: topics.Topic, msg: spb.Payload, ctx: _Context) -> None:
        node = self._synced(step, t, msg, ctx)
        entity = node.entity if not t.device else node.devices.get(t.device)
        if entity is None or not entity.online:
            raise self._refuse(
                step,
                node,
                "before_birth",
                ctx.now,
                f"DDATA from {t.device!r} of {node.device_id} before its DBIRTH",
            )
        self._readings(step, node, entity, msg, ctx, birth=False)

    def _ndeath(self, step: Step, t: topics.Topic, msg: spb.Payload, ctx: _Context) -> None:
        node = self.nodes.get((t.group, t.node))
        if node is None or not node.online:
            return  # nothing known to end
        bdseq = _bdseq(msg)
        if node.bdseq is None or bdseq is None or bdseq == node.bdseq:
            self._dead(step, node)
            return
        self._note(
            step,
            node,
            "bdseq_mismatch",
            f"its NDEATH says bdSeq {bdseq} where its NBIRTH said {node.bdseq}: "
            "asking for a rebirth; no answer means it is gone",
        )
        if node.rebirth_attempt or node.suspect_death:
            self._dead(step, node)  # it already left a rebirth request unanswered
            return
        node.suspect_death = True
        self._rebirth(step, node, "suspect_death", ctx.now)

    def _ddeath(self, step: Step, t: topics.Topic, msg: spb.Payload, ctx: _Context) -> None:
        node = self.nodes.get((t.group, t.node))
        entity = node.devices.get(t.device) if node is not None else None
        if node is None or entity is None:
            return
        if entity.online:
            entity.online = False
            step.availability.append(Availability(entity.device_id, False, session=True))
        if not msg.HasField("seq"):
            self._note(
                step,
                node,
                "ddeath_without_seq",
                "its DDEATH carries no sequence number (sent as a will from a "
                "connection of its own?): the device is offline, the sequence "
                "is left as it was",
            )
            return
        if node.synced:
            self._in_sequence(step, node, msg.seq, ctx)  # a gap asks for a rebirth

    # --- the sequence, and asking for a rebirth ---------------------------------------

    def _synced(self, step: Step, t: topics.Topic, msg: spb.Payload, ctx: _Context) -> Node:
        """The node of a message that needs its session intact; refuses it otherwise."""
        node = self._node(t)
        if not node.online or node.entity is None:
            raise self._refuse(
                step,
                node,
                "before_birth",
                ctx.now,
                f"{t.kind} from {node.device_id} before its NBIRTH",
            )
        if not node.synced:
            raise self._refuse(
                step,
                node,
                "awaiting_rebirth",
                ctx.now,
                f"{node.device_id} is out of sequence; waiting for its rebirth",
            )
        if not msg.HasField("seq"):
            node.synced = False
            raise self._refuse(
                step,
                node,
                "sequence_gap",
                ctx.now,
                f"{t.kind} from {node.device_id} without a sequence number",
            )
        expected = node.expected()
        if not self._in_sequence(step, node, msg.seq, ctx):
            raise DecodeError(
                "sequence_gap", f"{node.device_id}: sequence number {msg.seq}, expected {expected}"
            )
        return node

    def _in_sequence(self, step: Step, node: Node, seq: int, ctx: _Context) -> bool:
        """Is ``seq`` the next number? If not the node is out of sequence: ask for a rebirth."""
        if seq != node.expected():
            node.synced = False
            self._rebirth(step, node, "sequence_gap", ctx.now)
            return False
        node.seq = seq
        return True

    def _refuse(self, step: Step, node: Node, reason: str, now: int, detail: str) -> DecodeError:
        """Ask for a rebirth (unless one is awaited) and give the refusal to raise."""
        self._rebirth(step, node, reason, now)
        return DecodeError(reason, detail)

    def _rebirth(self, step: Step, node: Node, reason: str, now: int) -> None:
        if node.rebirth_at is not None:
            if now < self._due(node):
                return  # asked already; the answer may still come
            suspect = node.suspect_death
            self._unanswered(step, node)
            if suspect:
                return  # taken for dead: it will be born again when it comes back
        node.rebirth_at = now
        self.rebirths[reason] += 1
        body = spb.encode([(REBIRTH, None, spb.BOOLEAN, "boolean_value", True)], now // 1_000_000)
        step.publishes.append(Publish(topics.build(node.group, "NCMD", node.node), body, qos=0))

    def _due(self, node: Node) -> int:
        assert node.rebirth_at is not None
        return node.rebirth_at + int(self._wait(node.rebirth_attempt) * NS)

    def _unanswered(self, step: Step, node: Node) -> None:
        node.rebirth_at = None
        node.rebirth_attempt += 1
        self.anomalies["rebirth_unanswered"] += 1
        self._note(
            step,
            node,
            "rebirth_unanswered",
            "it did not answer a rebirth request; its data stays refused until it is born again",
        )
        if node.suspect_death:
            self._dead(step, node)

    def _dead(self, step: Step, node: Node) -> None:
        node.online = node.synced = node.suspect_death = False
        node.rebirth_at = None
        step.availability.append(Availability(node.device_id, False, session=True))
        for entity in node.devices.values():
            if entity.online:
                entity.online = False
                step.availability.append(Availability(entity.device_id, False, session=True))

    # --- readings -----------------------------------------------------------------------

    def _readings(
        self,
        step: Step,
        node: Node,
        entity: Entity,
        msg: spb.Payload,
        ctx: _Context,
        *,
        birth: bool,
    ) -> None:
        sent = ctx.now  # a payload without a (usable) timestamp: its arrival
        if msg.HasField("timestamp") and msg.timestamp <= spb.MS_MAX:
            sent = msg.timestamp * 1_000_000
        inputs = tuple(ctx.tags.items())
        tag_sets = entity.tag_sets
        out = step.readings
        for metric in msg.metrics:
            if birth:
                d: MetricDef | None = entity.names.get(metric.name) if metric.name else None
                if d is None and metric.HasField("alias"):
                    d = entity.aliases.get(metric.alias)
                mapped = False
            else:
                d, mapped = entity.resolve(metric)
                if d is None:
                    node.synced = False
                    what = f"alias {metric.alias}" if metric.HasField("alias") else "a name"
                    raise self._refuse(
                        step,
                        node,
                        "unknown_alias",
                        ctx.now,
                        f"{entity.device_id}: {what} its birth did not define",
                    )
                if metric.HasField("datatype") and metric.datatype != d.datatype:
                    node.synced = False
                    raise self._refuse(
                        step,
                        node,
                        "datatype_changed",
                        ctx.now,
                        f"{entity.device_id}: {d.name!r} is "
                        f"{spb.type_name(metric.datatype)}, its birth said "
                        f"{spb.type_name(d.datatype)}",
                    )
                if mapped:
                    self._note(
                        step,
                        node,
                        "bare_names",
                        f"its data names {d.name!r} without the prefix its birth gave it",
                    )
            if d is None or not d.reading:
                continue
            if metric.is_null or metric.is_transient:
                self.skipped["null" if metric.is_null else "transient"] += 1
                continue
            try:
                value = spb.value_of(metric, d.datatype)
                if type(value) is str:
                    check_value(value)  # no newline: it would end the line-protocol line
                ts = spb.timestamp_ns(metric.timestamp) if metric.HasField("timestamp") else sent
            except InvalidReading as exc:
                self.skipped[exc.reason] += 1
                continue
            metric_tags = tag_sets.get((inputs, d.unit))
            if metric_tags is None:  # the same few dicts for every reading of the entity
                metric_tags = {**ctx.tags, "group": node.group, "node": node.node}
                if d.unit:
                    metric_tags["unit"] = d.unit
                tag_sets[(inputs, d.unit)] = metric_tags
            out.append(
                Reading(
                    entity.device_id,
                    d.name,
                    value,
                    ts,
                    d.unit,
                    metric_tags,
                    ctx.topic,
                    ctx.trace_id,
                )
            )

    # --- nodes ----------------------------------------------------------------------------

    def _node(self, t: topics.Topic) -> Node:
        key = (t.group, t.node)
        node = self.nodes.get(key)
        if node is None:
            if len(self.nodes) >= self._max_nodes:
                raise DecodeError("too_many_nodes", f"more than {self._max_nodes} edge nodes")
            node = self.nodes[key] = Node(t.group, t.node, device_id(t.group, t.node))
        return node

    def _claim(self, owner: str, node: Node, sp_device: str) -> None:
        """Make ``owner`` name this node or device; refuse an id another one already has."""
        taken = self._targets.get(owner)
        if taken is not None and (taken[0] is not node or taken[1] != sp_device):
            raise DecodeError("device_id_clash", f"{owner} already names another Sparkplug entity")
        self._targets[owner] = (node, sp_device)

    def _note(self, step: Step, node: Node, kind: str, text: str) -> None:
        if kind != "rebirth_unanswered":
            self.anomalies[kind] += 1
        if kind not in node.noted:
            node.noted.add(kind)
            step.notes.append(f"Sparkplug edge node {node.device_id}: {text}")

    # --- commands -------------------------------------------------------------------------

    def target(self, device: str) -> tuple[Node, str, Entity]:
        """The node, Sparkplug device id and birth of an Outpost device id; InvalidReading."""
        found = self._targets.get(device)
        entity = None
        if found is not None:
            node, sp_device = found
            entity = node.devices.get(sp_device) if sp_device else node.entity
        if found is None or entity is None:
            raise InvalidReading(
                "not_born",
                f"{device}: no birth certificate seen yet, so its metrics' aliases and "
                "datatypes are unknown",
            )
        return node, sp_device, entity

    def command(self, device: str, settings: Mapping[str, Any], now_ns: int) -> list[Publish]:
        """The DCMD (or NCMD) writing ``settings`` (metric name → value); InvalidReading."""
        node, sp_device, entity = self.target(device)
        metrics = []
        for key, value in settings.items():
            d = entity.names.get(key)
            if d is None:
                raise InvalidReading(
                    "unknown_metric", f"{device} has no metric {key!r} in its birth certificate"
                )
            field_name, wire_value = spb.command_value(d.datatype, value)
            metrics.append((entity.wire_name(key), d.alias, d.datatype, field_name, wire_value))
        kind = "DCMD" if sp_device else "NCMD"
        topic = topics.build(node.group, kind, node.node, sp_device)
        return [Publish(topic, spb.encode(metrics, now_ns // 1_000_000), qos=0)]


@dataclass(slots=True)
class _Context:
    """What the readings of one message share."""

    topic: str
    now: int
    tags: Mapping[str, str]
    trace_id: str


def _bdseq(msg: spb.Payload) -> int | None:
    for metric in msg.metrics:
        if metric.name == BDSEQ:
            datatype = metric.datatype if metric.HasField("datatype") else spb.INT64
            if datatype not in spb.INTEGERS:
                return None
            try:
                return int(spb.value_of(metric, datatype))
            except InvalidReading:
                return None
    return None


_HANDLERS: dict[str, Callable[[SparkplugHost, Step, topics.Topic, spb.Payload, _Context], None]] = {
    "NBIRTH": SparkplugHost._nbirth,
    "DBIRTH": SparkplugHost._dbirth,
    "NDATA": SparkplugHost._data,
    "DDATA": SparkplugHost._data,
    "NDEATH": SparkplugHost._ndeath,
    "DDEATH": SparkplugHost._ddeath,
}
