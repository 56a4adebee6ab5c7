"""How the bridge gets its settings: CLI flags, the gateway's outpost.yaml, or both."""

from __future__ import annotations

import argparse

import pytest

from gateway.cli.device import add_parser, configs_from_args
from gateway.config.schema import Config
from gateway.serial.bridge import bridges_from_config


def parse(argv, config=None):
    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config")
    add_parser(parser.add_subparsers(dest="verb"), common)
    args = parser.parse_args(["device", "serial", *argv])
    if config is not None:
        args.config = str(config)
    return args


def test_flags_alone_bridge_one_port_named_after_it():
    ((serial, mqtt),) = configs_from_args(
        parse(["--port", "/dev/ttyUSB0", "--host", "broker", "--port-mqtt", "1884"])
    )
    assert (serial.port, serial.device, serial.baud, serial.framing) == (
        "/dev/ttyUSB0", "ttyUSB0", 9600, "jsonlines")  # fmt: skip
    assert (mqtt.host, mqtt.port) == ("broker", 1884)


def test_without_port_every_serial_entry_of_the_config_is_bridged_on_its_broker(tmp_path):
    config = tmp_path / "outpost.yaml"
    config.write_text(
        "mqtt: {host: mq.local, port: 1885, username: gw}\n"
        "serial:\n"
        "  - {port: /dev/ttyUSB0, baud: 115200, framing: kv, profile: bme280, device: bench-1}\n"
        "  - {port: /dev/ttyUSB1, device: bench-2}\n"
    )
    pairs = configs_from_args(parse([], config))
    assert [(s.device, s.baud, s.framing, s.profile) for s, _ in pairs] == [
        ("bench-1", 115200, "kv", "bme280"), ("bench-2", 9600, "jsonlines", None)]  # fmt: skip
    assert {(m.host, m.port, m.username) for _, m in pairs} == {("mq.local", 1885, "gw")}
    only = configs_from_args(parse(["--device", "bench-2"], config))
    assert [s.device for s, _ in only] == ["bench-2"]


def test_without_port_or_serial_entries_it_says_so(tmp_path):
    config = tmp_path / "outpost.yaml"
    config.write_text("mqtt: {host: localhost}\n")
    with pytest.raises(ValueError, match="no --port"):
        configs_from_args(parse([], config))


def test_the_gateway_builds_its_bridges_from_its_config():
    config = Config.model_validate(
        {"mqtt": {"host": "mq", "port": 1886},
         "serial": [{"port": "/dev/ttyACM0", "device": "gh-1", "profile": "dht22"}]}
    )  # fmt: skip
    (bridge,) = bridges_from_config(config)
    assert (bridge.config.port, bridge.config.device, bridge.config.profile) == (
        "/dev/ttyACM0", "gh-1", "dht22")  # fmt: skip
    assert (bridge.mqtt.host, bridge.mqtt.port) == ("mq", 1886)
    assert bridge.readings_topic == "sensors/gh-1"
