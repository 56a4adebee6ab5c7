"""MQTT 5.0 packets of the ingest connection, as bytes (OASIS MQTT Version 5.0).

Only what a client that receives needs: it sends CONNECT (with a will,
credentials and the Session Expiry Interval, Receive Maximum and Maximum
Packet Size properties), SUBSCRIBE, PUBLISH (its own status), PUBACK,
PINGREQ and DISCONNECT; it reads CONNACK, PUBLISH at QoS 0 and 1, PUBACK,
SUBACK, PINGRESP and DISCONNECT. Anything else a broker sends is a
:class:`ProtocolError`.

:func:`read_packets` is the receive path: it cuts every complete packet out of
a chunk of the stream in one pass, and reads a PUBLISH without decoding its
properties (their length is skipped). The client announces no Topic Alias
Maximum, so a broker may not use topic aliases (§3.1.2.11.5): a PUBLISH without
a topic name is refused rather than looked up. A topic that is not UTF-8 (a
broker that does not check what devices publish) is read with the bad bytes as
lone surrogates: closing the connection would only bring the same QoS 1 message
back, so the pipeline refuses that one message instead (``invalid_text``).
Control packets, rare, are returned whole and read by the ``decode_*``
functions, which check every property they meet.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

# Control packet types (§2.1.2), the high nibble of the first byte.
CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

PINGREQ_PACKET = b"\xc0\x00"
MAX_REMAINING = 268_435_455  # four bytes of Variable Byte Integer (§1.5.5)
MAX_PACKET_ID = 65535

# Reason codes this client sends in its DISCONNECT (§3.14.2.1).
NORMAL = 0x00
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
PACKET_TOO_LARGE = 0x95

# What the reason codes of CONNACK, SUBACK, PUBACK and DISCONNECT mean (§2.4); below
# 0x80 a success, from 0x80 a failure. 0x00 reads "Success" (CONNACK, PUBACK),
# "Granted QoS 0" (SUBACK) or "Normal disconnection" (DISCONNECT).
REASONS = {
    0x00: "Success",
    0x01: "Granted QoS 1",
    0x02: "Granted QoS 2",
    0x04: "Disconnect with Will Message",
    0x10: "No matching subscribers",
    0x80: "Unspecified error",
    0x81: "Malformed Packet",
    0x82: "Protocol Error",
    0x83: "Implementation specific error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8B: "Server shutting down",
    0x8C: "Bad authentication method",
    0x8D: "Keep Alive timeout",
    0x8E: "Session taken over",
    0x8F: "Topic Filter invalid",
    0x90: "Topic Name invalid",
    0x91: "Packet Identifier in use",
    0x93: "Receive Maximum exceeded",
    0x94: "Topic Alias invalid",
    0x95: "Packet too large",
    0x96: "Message rate too high",
    0x97: "Quota exceeded",
    0x98: "Administrative action",
    0x99: "Payload format invalid",
    0x9A: "Retain not supported",
    0x9B: "QoS not supported",
    0x9C: "Use another server",
    0x9D: "Server moved",
    0x9E: "Shared Subscriptions not supported",
    0x9F: "Connection rate exceeded",
    0xA0: "Maximum connect time",
    0xA1: "Subscription Identifiers not supported",
    0xA2: "Wildcard Subscriptions not supported",
}

# Property identifiers (§2.2.2.2) this client writes or reads by name.
SESSION_EXPIRY_INTERVAL = 0x11
SERVER_KEEP_ALIVE = 0x13
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27

# Every property and the type of its value, to walk a property list (§2.2.2.2).
_BYTE, _TWO, _FOUR, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _UTF8, 0x08: _UTF8, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _FOUR, 0x12: _UTF8, 0x13: _TWO, 0x15: _UTF8, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _FOUR, 0x19: _BYTE, 0x1A: _UTF8, 0x1C: _UTF8, 0x1F: _UTF8, 0x21: _TWO,
    0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}  # fmt: skip

Properties = dict[int, "int | str | bytes | list[tuple[str, str]]"]


def reason_name(code: int) -> str:
    return f"{REASONS.get(code, 'unknown reason')} (0x{code:02X})"


class ProtocolError(Exception):
    """The broker sent something MQTT 5 forbids; ``code`` is the DISCONNECT reason to send."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- encoding -----------------------------------------------------------------------


def varint(value: int) -> bytes:
    """A Variable Byte Integer (§1.5.5): seven bits a byte, low bits first."""
    if not 0 <= value <= MAX_REMAINING:
        raise ValueError(f"{value} does not fit a Variable Byte Integer")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def utf8(text: str) -> bytes:
    """A UTF-8 Encoded String (§1.5.4): two bytes of length, then the bytes."""
    return binary(text.encode("utf-8"))


def binary(data: bytes) -> bytes:
    """Binary Data (§1.5.6): two bytes of length, then the bytes."""
    if len(data) > 65535:
        raise ValueError(f"{len(data)} bytes do not fit a two-byte length")
    return len(data).to_bytes(2, "big") + data


def packet(first: int, body: bytes) -> bytes:
    """A whole packet: the first byte (type and flags), the Remaining Length, the body."""
    return bytes((first,)) + varint(len(body)) + body


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class Connect:
    """What goes into a CONNECT (§3.1); ``None`` leaves a property out."""

    client_id: str
    keepalive: int
    clean_start: bool = False
    session_expiry: int | None = None
    receive_maximum: int | None = None
    maximum_packet_size: int | None = None
    will: Will | None = None
    username: str | None = None
    password: bytes | None = field(default=None, repr=False)

    def encode(self) -> bytes:
        flags = 0x02 if self.clean_start else 0
        if self.username is not None:
            flags |= 0x80
        if self.password is not None:
            flags |= 0x40
        if self.will is not None:
            flags |= 0x04 | self.will.qos << 3 | (0x20 if self.will.retain else 0)
        props = b""
        if self.session_expiry is not None:
            props += bytes((SESSION_EXPIRY_INTERVAL,)) + self.session_expiry.to_bytes(4, "big")
        if self.receive_maximum is not None:
            props += bytes((RECEIVE_MAXIMUM,)) + self.receive_maximum.to_bytes(2, "big")
        if self.maximum_packet_size is not None:
            props += bytes((MAXIMUM_PACKET_SIZE,)) + self.maximum_packet_size.to_bytes(4, "big")
        body = utf8("MQTT") + bytes((5, flags)) + self.keepalive.to_bytes(2, "big")
        body += varint(len(props)) + props + utf8(self.client_id)
        if self.will is not None:
            body += b"\x00" + utf8(self.will.topic) + binary(self.will.payload)  # no will props
        if self.username is not None:
            body += utf8(self.username)
        if self.password is not None:
            body += binary(self.password)
        return packet(CONNECT << 4, body)


def encode_subscribe(packet_id: int, filters: Sequence[tuple[str, int]]) -> bytes:
    """SUBSCRIBE (§3.8): each filter with its maximum QoS; retained messages are sent."""
    body = packet_id.to_bytes(2, "big") + b"\x00"  # no properties
    for topic_filter, qos in filters:
        body += utf8(topic_filter) + bytes((qos,))
    return packet(SUBSCRIBE << 4 | 0x02, body)


def encode_publish(
    topic: str, payload: bytes, *, qos: int = 0, retain: bool = False, packet_id: int = 0
) -> bytes:
    """PUBLISH (§3.3) without properties."""
    body = utf8(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + b"\x00" + payload
    return packet(PUBLISH << 4 | qos << 1 | (1 if retain else 0), body)


def encode_pubacks(packet_ids: Sequence[int]) -> bytes:
    """One PUBACK per id, in the given order; Success needs no reason code (§3.4.2.1)."""
    return struct.pack(f">{len(packet_ids)}I", *[0x4002_0000 | pid for pid in packet_ids])


def encode_disconnect(reason: int = NORMAL) -> bytes:
    """DISCONNECT (§3.14): 0x00 means a normal disconnection, and the broker drops the will."""
    return b"\xe0\x00" if reason == NORMAL else bytes((DISCONNECT << 4, 1, reason))


# --- the receive path -------------------------------------------------------------------


def read_packets(
    data: bytes,
    token_base: int,
    max_size: int,
    publishes: list[tuple[str, bytes, int | None]],
    controls: list[tuple[int, int, bytes]],
) -> tuple[int, int]:
    """Read every complete packet at the start of ``data``.

    A PUBLISH goes to ``publishes`` as ``(topic, payload, token)``: ``token`` is None
    at QoS 0 and ``token_base | packet id`` at QoS 1. Any other packet goes to
    ``controls`` as ``(type, flags, body)``. Returns where the rest of ``data``
    begins and how many QoS 1 messages were read. Raises :class:`ProtocolError` at
    the first packet that breaks the protocol (what was read before it is kept).
    """
    end = len(data)
    pos = 0
    qos1 = 0
    add = publishes.append
    while end - pos >= 2:
        first = data[pos]
        length = data[pos + 1]
        start = pos + 2
        if length & 0x80:
            length, start = _remaining_length(data, pos + 1)
            if start < 0:
                return pos, qos1  # the length itself is not complete yet
            if start - pos + length > max_size:
                raise _too_large(start - pos + length, max_size)
        stop = start + length
        if stop > end:
            return pos, qos1
        if first >> 4 == PUBLISH:
            if length < 3:
                raise ProtocolError(MALFORMED, "PUBLISH shorter than its topic")
            topic_end = start + 2 + (data[start] << 8 | data[start + 1])
            if topic_end == start + 2:
                raise ProtocolError(
                    PROTOCOL_ERROR, "PUBLISH without a topic name (topic aliases are not allowed)"
                )
            qos = first >> 1 & 3
            if qos == 0:
                token = None
                at = topic_end
            elif qos == 1:
                if topic_end + 2 >= stop:
                    raise ProtocolError(MALFORMED, "PUBLISH shorter than its topic")
                packet_id = data[topic_end] << 8 | data[topic_end + 1]
                if not packet_id:
                    raise ProtocolError(PROTOCOL_ERROR, "QoS 1 PUBLISH with packet identifier 0")
                token = token_base | packet_id
                qos1 += 1
                at = topic_end + 2
            else:
                raise _bad_qos(qos)
            if at >= stop:
                raise ProtocolError(MALFORMED, "PUBLISH shorter than its topic")
            skip = data[at]
            if skip & 0x80:
                skip, at = _remaining_length(data, at)
                if at < 0 or at > stop:
                    raise ProtocolError(MALFORMED, "PUBLISH property length cut off")
            else:
                at += 1
            at += skip
            if at > stop:
                raise ProtocolError(MALFORMED, "PUBLISH properties longer than the packet")
            try:
                topic = data[start + 2 : topic_end].decode()
            except UnicodeDecodeError:  # the pipeline refuses it (dead letter, acknowledged)
                topic = data[start + 2 : topic_end].decode("utf-8", "surrogateescape")
            add((topic, data[at:stop], token))
        else:
            controls.append((first >> 4, first & 0x0F, data[start:stop]))
        pos = stop
    return pos, qos1


def packet_size(data: bytes | bytearray, max_size: int) -> int:
    """How many bytes the packet at the start of ``data`` needs in all.

    While its Remaining Length is still incomplete: one more than ``data`` holds.
    Raises :class:`ProtocolError` for a length of more than four bytes or a packet
    above ``max_size`` (before any of its body has to be kept).
    """
    if len(data) < 2:
        return len(data) + 1
    length, start = _remaining_length(data, 1)
    if start < 0:
        return len(data) + 1
    if start + length > max_size:
        raise _too_large(start + length, max_size)
    return start + length


def _remaining_length(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """A Variable Byte Integer at ``pos``: ``(value, position after it)``; ``(0, -1)`` if cut."""
    value = 0
    for i in range(4):
        if pos + i >= len(data):
            return 0, -1
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise ProtocolError(MALFORMED, "Variable Byte Integer longer than four bytes")


def _too_large(size: int, max_size: int) -> ProtocolError:
    return ProtocolError(
        PACKET_TOO_LARGE, f"a {size}-byte packet exceeds the Maximum Packet Size {max_size}"
    )


def _bad_qos(qos: int) -> ProtocolError:
    if qos == 3:
        return ProtocolError(MALFORMED, "PUBLISH with QoS 3")
    return ProtocolError(PROTOCOL_ERROR, "QoS 2 PUBLISH, though no subscription allows QoS 2")


# --- control packets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Connack:
    session_present: bool
    reason: int
    properties: Properties

    @property
    def refused(self) -> bool:
        return self.reason >= 0x80


def decode_connack(body: bytes) -> Connack:
    """CONNACK (§3.2): the session-present flag, the reason code and the properties."""
    if len(body) < 2 or body[0] & 0xFE:
        raise ProtocolError(MALFORMED, "CONNACK malformed")
    props = decode_properties(body, 2)[0] if len(body) > 2 else {}
    return Connack(bool(body[0] & 1), body[1], props)


def decode_suback(body: bytes) -> tuple[int, list[int], str | None]:
    """SUBACK (§3.9): packet id, one reason code per filter, and the reason string."""
    if len(body) < 3:
        raise ProtocolError(MALFORMED, "SUBACK malformed")
    props, at = decode_properties(body, 2)
    return body[0] << 8 | body[1], list(body[at:]), _reason_string(props)


def decode_puback(body: bytes) -> tuple[int, int]:
    """PUBACK (§3.4): packet id and reason code (Success when left out)."""
    if len(body) < 2:
        raise ProtocolError(MALFORMED, "PUBACK malformed")
    if len(body) > 3:
        decode_properties(body, 3)
    return body[0] << 8 | body[1], body[2] if len(body) > 2 else NORMAL


def decode_disconnect(body: bytes) -> tuple[int, str | None]:
    """DISCONNECT (§3.14): the reason code (normal when left out) and the reason string."""
    if not body:
        return NORMAL, None
    props = decode_properties(body, 1)[0] if len(body) > 1 else {}
    return body[0], _reason_string(props)


def _reason_string(props: Properties) -> str | None:
    value = props.get(REASON_STRING)
    return value if isinstance(value, str) else None


def decode_properties(data: bytes, pos: int) -> tuple[Properties, int]:
    """The property list at ``pos`` (its length first); returns it and the position after."""
    length, pos = _remaining_length(data, pos)
    end = pos + length
    if pos < 0 or end > len(data):
        raise ProtocolError(MALFORMED, "property length beyond the packet")
    props: Properties = {}
    pairs: list[tuple[str, str]] = []
    while pos < end:
        ident = data[pos]
        kind = _PROPERTY_TYPES.get(ident)
        if kind is None:
            raise ProtocolError(MALFORMED, f"unknown property 0x{ident:02X}")
        value, pos = _property_value(data, pos + 1, end, kind)
        if kind == _PAIR:
            pairs.append(value)  # type: ignore[arg-type]
        elif ident in props:
            raise ProtocolError(PROTOCOL_ERROR, f"property 0x{ident:02X} twice")
        else:
            props[ident] = value  # type: ignore[assignment]
    if pairs:
        props[USER_PROPERTY] = pairs
    return props, end


def _property_value(data: bytes, pos: int, end: int, kind: int) -> tuple[object, int]:
    if kind == _VARINT:
        value, after = _remaining_length(data[:end], pos)
        if after < 0:
            raise ProtocolError(MALFORMED, "property cut off")
        return value, after
    if kind == _PAIR:
        name, pos = _property_value(data, pos, end, _UTF8)
        text, pos = _property_value(data, pos, end, _UTF8)
        return (name, text), pos
    size = {_BYTE: 1, _TWO: 2, _FOUR: 4}.get(kind)
    if size is None:  # a string or binary data: two bytes of length first
        if pos + 2 > end:
            raise ProtocolError(MALFORMED, "property cut off")
        size = data[pos] << 8 | data[pos + 1]
        pos += 2
        if pos + size > end:
            raise ProtocolError(MALFORMED, "property cut off")
        raw = data[pos : pos + size]
        if kind == _BINARY:
            return raw, pos + size
        try:
            return raw.decode(), pos + size
        except UnicodeDecodeError:
            raise ProtocolError(MALFORMED, "property string is not UTF-8") from None
    if pos + size > end:
        raise ProtocolError(MALFORMED, "property cut off")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size
