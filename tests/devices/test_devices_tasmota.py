"""Tasmota convention, payloads from https://tasmota.github.io/docs/MQTT/ and
https://tasmota.github.io/docs/Commands/ (Power, the RESULT answers, LWT)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

import devices.conventions as conventions
from devices.conventions import Availability, PendingCommand
from devices.decoding import Message
from devices.model import InvalidReading

TASMOTA = conventions.create("tasmota")
NOW = 1_795_755_841_000_000_000


def msg(topic, payload):
    return Message(topic, payload if isinstance(payload, bytes) else payload.encode(), {}, NOW)


def table(readings):
    return {(r.metric, r.tags.get("sensor", "")): (r.value, r.unit) for r in readings}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # AM2301 on a Sonoff TH (docs: sensor telemetry with TempUnit)
        ('{"Time":"2019-11-03T19:34:28","AM2301":{"Temperature":21.6,"Humidity":39.2,'
         '"DewPoint":7.1},"TempUnit":"C"}',
         {("temperature", "AM2301"): (21.6, "°C"), ("humidity", "AM2301"): (39.2, "%"),
          ("dew_point", "AM2301"): (7.1, "°C")}),
        # Fahrenheit devices say so in TempUnit
        ('{"Time":"2019-11-03T19:34:28","DS18B20":{"Id":"01131B3B6AAA","Temperature":70.2},'
         '"TempUnit":"F"}',
         {("id", "DS18B20"): ("01131B3B6AAA", ""), ("temperature", "DS18B20"): (70.2, "°F")}),
        # BME280 with PressureUnit
        ('{"Time":"2019-11-03T19:34:28","BME280":{"Temperature":22.4,"Humidity":51.0,'
         '"Pressure":1012.3},"PressureUnit":"hPa","TempUnit":"C"}',
         {("temperature", "BME280"): (22.4, "°C"), ("humidity", "BME280"): (51.0, "%"),
          ("pressure", "BME280"): (1012.3, "hPa")}),
        # A power-monitoring plug (ENERGY): units per field; the start time stays text
        ('{"Time":"2019-11-03T19:34:28","ENERGY":{"TotalStartTime":"2019-10-01T12:00:00",'
         '"Total":3.185,"Yesterday":3.058,"Today":0.127,"Power":12,"ApparentPower":15,'
         '"ReactivePower":9,"Factor":0.80,"Voltage":230,"Current":0.065}}',
         {("total_start_time", "ENERGY"): ("2019-10-01T12:00:00", ""),
          ("total", "ENERGY"): (3.185, "kWh"), ("yesterday", "ENERGY"): (3.058, "kWh"),
          ("today", "ENERGY"): (0.127, "kWh"), ("power", "ENERGY"): (12.0, "W"),
          ("apparent_power", "ENERGY"): (15.0, "VA"), ("reactive_power", "ENERGY"): (9.0, "VAr"),
          ("factor", "ENERGY"): (0.8, ""), ("voltage", "ENERGY"): (230.0, "V"),
          ("current", "ENERGY"): (0.065, "A")}),
        # A switch input reported at the top level
        ('{"Time":"2024-02-24T22:20:38","Switch1":"ON"}', {("switch1", ""): (True, "")}),
    ],
)  # fmt: skip
def test_sensor_telemetry_decodes_with_sensor_tags_and_units(payload, expected):
    readings = TASMOTA.decode(msg("tele/th16/SENSOR", payload))
    assert table(readings) == expected
    assert {r.device for r in readings} == {"th16"}


def test_device_local_time_is_ignored_by_default_and_the_arrival_time_used():
    readings = TASMOTA.decode(msg("tele/th16/SENSOR", '{"Time":"2019-11-03T19:34:28",'
                                  '"SI7021":{"Temperature":20.0}}'))  # fmt: skip
    assert {r.ts for r in readings} == {NOW}


def test_with_time_local_the_device_time_is_read_in_the_gateway_zone():
    tasmota = conventions.create("tasmota", {"time": "local"})
    (reading,) = tasmota.decode(msg("tele/th16/SENSOR", '{"Time":"2019-11-03T19:34:28",'
                                    '"SI7021":{"Temperature":20.0}}'))  # fmt: skip
    expected = time.mktime(datetime(2019, 11, 3, 19, 34, 28).timetuple())
    assert reading.ts == int(expected) * 1_000_000_000


def test_state_telemetry_keeps_power_dimmer_uptime_and_wifi_signal():
    # A tele/STATE as a Tasmota 13 device publishes it every TelePeriod
    payload = ('{"Time":"2024-02-24T22:20:38","Uptime":"0T00:10:11","UptimeSec":611,"Heap":24,'
               '"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":1,"POWER1":"OFF",'
               '"POWER2":"ON","Dimmer":40,"Wifi":{"AP":1,"SSId":"ESP-Network",'
               '"BSSId":"E6:8D:8C:4B:BE:F7","Channel":3,"Mode":"11n","RSSI":44,"Signal":-78,'
               '"LinkCount":1,"Downtime":"0T00:00:05"}}')  # fmt: skip
    assert table(TASMOTA.decode(msg("tele/plug/STATE", payload))) == {
        ("uptime", ""): (611.0, "s"),
        ("power1", ""): (False, ""),
        ("power2", ""): (True, ""),
        ("dimmer", ""): (40.0, "%"),
        ("wifi_rssi", ""): (44.0, "%"),
        ("wifi_signal", ""): (-78.0, "dBm"),
    }


@pytest.mark.parametrize(
    "topic", ["tele/plug/LWT", "tele/plug/INFO1", "cmnd/plug/POWER", "stat/plug/STATUS"]
)
def test_topics_without_readings_decode_to_nothing(topic):
    assert TASMOTA.decode(msg(topic, "Online")) == []


def test_an_unknown_prefix_is_unsupported():
    with pytest.raises(InvalidReading, match="prefix"):
        TASMOTA.decode(msg("misc/plug/SENSOR", "{}"))


@pytest.mark.parametrize(
    ("payload", "expected"), [("Online", True), ("Offline", False), ("online", None)]
)
def test_lwt_is_the_availability(payload, expected):
    got = TASMOTA.availability(msg("tele/plug/LWT", payload))
    assert got == (None if expected is None else Availability("plug", expected))


def test_each_setting_is_one_command_topic_with_on_off():
    publishes = TASMOTA.encode_command("plug", "c-1", {"Power1": True, "Dimmer": 40.0})
    assert [(p.topic, p.payload) for p in publishes] == [
        ("cmnd/plug/Power1", b"ON"),
        ("cmnd/plug/Dimmer", b"40"),
    ]
    assert TASMOTA.ack_subscriptions("plug") == ["stat/plug/RESULT"]


def test_a_command_key_cannot_smuggle_a_topic_level():
    with pytest.raises(InvalidReading):
        TASMOTA.encode_command("plug", "c-1", {"POWER/#": True})


@pytest.mark.parametrize(
    ("settings", "result", "keys", "rejected"),
    [
        # "cmnd/tasmota/Power1 TOGGLE ↳ stat/tasmota/RESULT → {"POWER1":"ON"}" (Commands page)
        ({"Power1": True}, '{"POWER1":"ON"}', {"Power1"}, False),
        ({"Power1": True}, '{"POWER1":"OFF"}', None, False),
        ({"Dimmer": 40}, '{"POWER":"ON","Dimmer":40}', {"Dimmer"}, False),
        ({"Frobnicate": 1}, '{"Command":"Unknown"}', set(), True),
    ],
)  # fmt: skip
def test_result_confirms_or_rejects(settings, result, keys, rejected):
    pending = PendingCommand("plug", "c-1", settings)
    confirmation = TASMOTA.confirm(msg("stat/plug/RESULT", result), pending)
    if keys is None:
        assert confirmation is None
    else:
        assert (set(confirmation.keys), confirmation.rejected) == (keys, rejected)


def test_a_custom_full_topic():
    tasmota = conventions.create("tasmota", {"full_topic": "tasmota/%topic%/%prefix%/"})
    assert tasmota.subscriptions()[0] == "tasmota/+/tele/SENSOR"
    (reading,) = tasmota.decode(msg("tasmota/th/tele/SENSOR", '{"SHT3X":{"Humidity":50}}'))
    assert (reading.device, reading.metric) == ("th", "humidity")
    assert tasmota.encode_command("th", "c", {"Power": False})[0].topic == "tasmota/th/cmnd/Power"
