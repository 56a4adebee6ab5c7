"""The ingest connection's packets, byte for byte against the MQTT 5.0 specification."""

from __future__ import annotations

import pytest

from gateway.mqtt import wire
from tests.mqtt.fakebroker import packet, publish, string, varint


def read(data: bytes, token_base: int = 1 << 16, max_size: int = 1 << 20):
    publishes: list = []
    controls: list = []
    used, qos1 = wire.read_packets(data, token_base, max_size, publishes, controls)
    return used, qos1, publishes, controls


def test_variable_byte_integers_at_their_boundaries():
    # §1.5.5: one byte up to 127, two up to 16,383, three up to 2,097,151, four to 268,435,455.
    cases = {0: "00", 127: "7f", 128: "8001", 16_383: "ff7f", 16_384: "808001",
             2_097_151: "ffff7f", 2_097_152: "80808001", 268_435_455: "ffffff7f"}  # fmt: skip
    for value, hex_bytes in cases.items():
        assert wire.varint(value).hex() == hex_bytes
        assert wire._remaining_length(bytes.fromhex(hex_bytes), 0) == (value, len(hex_bytes) // 2)
    with pytest.raises(ValueError):
        wire.varint(268_435_456)


def test_connect_carries_the_session_the_limits_the_will_and_the_login():
    connect = wire.Connect(
        client_id="gw", keepalive=30, session_expiry=86400, receive_maximum=10100,
        maximum_packet_size=16 * 1024**2, will=wire.Will("outpost/status", b"offline"),
        username="outpost", password=b"s3cret",
    )  # fmt: skip
    expected_body = (
        string("MQTT") + bytes((5, 0x80 | 0x40 | 0x20 | 0x08 | 0x04)) + (30).to_bytes(2, "big")
        + bytes((13, 0x11)) + (86400).to_bytes(4, "big")
        + bytes((0x21,)) + (10100).to_bytes(2, "big")
        + bytes((0x27,)) + (16 * 1024**2).to_bytes(4, "big")
        + string("gw") + b"\x00" + string("outpost/status") + string(b"offline")
        + string("outpost") + string(b"s3cret")
    )  # fmt: skip
    assert connect.encode() == packet(0x10, expected_body)
    # Clean start off (bit 1 clear): the broker keeps the session.
    assert not connect.encode()[2 + 6 + 1] & 0x02


def test_anonymous_connect_without_will_has_only_its_id():
    encoded = wire.Connect(client_id="x", keepalive=0).encode()
    assert encoded == packet(0x10, string("MQTT") + b"\x05\x00\x00\x00\x00" + string("x"))


def test_subscribe_publish_pubacks_and_disconnect():
    assert wire.encode_subscribe(7, [("sensors/#", 1), ("tele/+/LWT", 0)]) == packet(
        0x82, b"\x00\x07\x00" + string("sensors/#") + b"\x01" + string("tele/+/LWT") + b"\x00"
    )
    assert wire.encode_publish("outpost/status", b"online", qos=1, retain=True, packet_id=3) == (
        packet(0x33, string("outpost/status") + b"\x00\x03\x00online")
    )
    assert wire.encode_pubacks([1, 65535, 256]).hex() == "40020001" "4002ffff" "40020100"
    assert wire.encode_disconnect() == b"\xe0\x00"
    assert wire.encode_disconnect(wire.MALFORMED) == b"\xe0\x01\x81"


def test_every_packet_of_a_chunk_is_read_and_the_rest_kept():
    chunk = (
        publish("sensors/a/t", b"21.5")
        + publish("sensors/b/t", b"x" * 300, qos=1, packet_id=9)  # a two-byte length
        + bytes((0xD0, 0))  # PINGRESP
        + publish("sensors/c/t", b"cut")[:-2]
    )
    used, qos1, publishes, controls = read(chunk, token_base=5 << 16)
    assert publishes == [("sensors/a/t", b"21.5", None), ("sensors/b/t", b"x" * 300, 5 << 16 | 9)]
    assert controls == [(wire.PINGRESP, 0, b"")]
    assert qos1 == 1
    rest = chunk[used:]
    assert rest == publish("sensors/c/t", b"cut")[:-2]
    assert wire.packet_size(rest, 1 << 20) == len(publish("sensors/c/t", b"cut"))


def test_publish_properties_are_skipped_not_decoded():
    props = bytes((0x01, 1)) + bytes((0x03,)) + string("text/plain") + bytes((0x0B, 0x81, 0x01))
    body = string("sensors/a/t") + b"\x00\x02" + varint(len(props)) + props + b"42"
    publishes = read(packet(0x32, body))[2]
    assert publishes == [("sensors/a/t", b"42", 1 << 16 | 2)]
    # A property list longer than 127 bytes has a two-byte length.
    long_props = bytes((0x03,)) + string("x" * 200)
    body = string("s/t") + varint(len(long_props)) + long_props + b"7"
    assert read(packet(0x30, body))[2] == [("s/t", b"7", None)]


def test_a_topic_that_is_not_utf8_is_read_with_surrogates_for_the_pipeline_to_refuse():
    # Closing the connection would bring the same QoS 1 message back again and again.
    data = packet(0x32, string(b"sensors/\xed\xa0\x80/t") + b"\x00\x05\x00" + b"21.5")
    assert read(data)[2] == [("sensors/\udced\udca0\udc80/t", b"21.5", 1 << 16 | 5)]


def test_an_incomplete_length_waits_for_more():
    big = publish("s/t", b"x" * 70_000)
    for cut in (1, 2, 3):  # the type byte, then one and two of the three length bytes
        used, _, publishes, _ = read(big[:cut])
        assert (used, publishes) == (0, [])
        assert wire.packet_size(big[:cut], 1 << 20) == cut + 1


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"\x30\xff\xff\xff\xff\x01", wire.MALFORMED, "longer than four bytes"),
        (packet(0x30, string("sensors/a/t")[:2] + b"ab"), wire.MALFORMED, "shorter"),
        (packet(0x32, string("s/t") + b"\x00"), wire.MALFORMED, "shorter"),
        (packet(0x30, string("s/t") + b"\x05ab"), wire.MALFORMED, "properties longer"),
        (packet(0x30, string("") + b"\x03\x23\x00\x01x"), wire.PROTOCOL_ERROR, "alias"),
        (packet(0x34, string("s/t") + b"\x00\x01\x00x"), wire.PROTOCOL_ERROR, "QoS 2"),
        (packet(0x36, string("s/t") + b"\x00\x01\x00x"), wire.MALFORMED, "QoS 3"),
        (packet(0x32, string("s/t") + b"\x00\x00\x00x"), wire.PROTOCOL_ERROR, "identifier 0"),
    ],
)
def test_broken_packets_are_refused_with_the_reason_code(data, code, words):
    with pytest.raises(wire.ProtocolError) as caught:
        read(data)
    assert caught.value.code == code and words in str(caught.value)


def test_a_packet_above_the_maximum_size_is_refused_before_its_body_arrives():
    header = b"\x30" + wire.varint(2_000_000)
    with pytest.raises(wire.ProtocolError) as caught:
        wire.packet_size(header, 1_000_000)
    assert caught.value.code == wire.PACKET_TOO_LARGE
    with pytest.raises(wire.ProtocolError):
        read(header + b"\x00" * 10, max_size=1_000_000)


def test_connack_suback_puback_and_disconnect_are_read_with_their_properties():
    props = bytes((0x13,)) + (5).to_bytes(2, "big") + bytes((0x1F,)) + string("hello")
    props += bytes((0x26,)) + string("k") + string("v")
    connack = wire.decode_connack(b"\x01\x00" + varint(len(props)) + props)
    assert connack.session_present and not connack.refused
    assert connack.properties[wire.SERVER_KEEP_ALIVE] == 5
    assert connack.properties[wire.USER_PROPERTY] == [("k", "v")]
    assert wire.decode_connack(b"\x00\x87\x00").refused
    reason = bytes((0x1F,)) + string("no")
    assert wire.decode_suback(b"\x00\x04" + varint(len(reason)) + reason + b"\x01\x87") == (
        4, [1, 0x87], "no")  # fmt: skip
    assert wire.decode_puback(b"\x00\x02") == (2, 0)
    assert wire.decode_puback(b"\x00\x02\x10") == (2, 0x10)
    assert wire.decode_disconnect(b"") == (0, None)
    assert wire.decode_disconnect(b"\x8e\x00") == (0x8E, None)
    assert wire.reason_name(0x87) == "Not authorized (0x87)"


@pytest.mark.parametrize(
    "body",
    [
        b"\x01\x00\x03\x99\x00\x00",  # an unknown property
        b"\x01\x00\x06\x13\x00\x05\x13\x00\x06",  # a property twice
        b"\x01\x00\x09\x1f\x00\x10abc",  # a string longer than its list
        b"\x02\x00\x00",  # a reserved flag set
    ],
)
def test_broken_connacks_are_malformed(body):
    with pytest.raises(wire.ProtocolError):
        wire.decode_connack(body)
