"""The shipped ACL (deploy/mosquitto/acl) on a real Mosquitto: least privilege per login.

Denied publishes are dropped silently by Mosquitto (MQTT 3.1.1), so every check ends
with an allowed "marker" message from the same client: messages of one client arrive
in order, so once the marker is in, anything denied before it would have been too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.security.conftest import ACL, REPO
from tests.security.mqtt import Peer, pump_all
from tests.services import Mosquitto


def _rules(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_compose_uses_the_same_acl_as_a_plain_install() -> None:
    assert _rules(REPO / "deploy" / "compose" / "acl") == _rules(ACL)


def test_broker_configs_shipped_refuse_anonymous_clients_and_use_the_acl() -> None:
    for conf in ("deploy/mosquitto/mosquitto.conf", "deploy/compose/mosquitto.conf"):
        settings = dict(line.split(None, 1) for line in _rules(REPO / conf))
        assert settings["allow_anonymous"] == "false", conf
        assert settings["password_file"] and settings["acl_file"], conf


def _attempts(peer: Peer, topics: list[str], marker: str) -> None:
    for topic in topics:
        peer.publish(topic, b"forged")
    peer.publish(marker, b"marker")


def test_a_device_publishes_only_under_its_own_topics(
        secure_broker: Mosquitto, passwords: dict[str, str]) -> None:
    port = secure_broker.port
    with Peer(port, "outpost", passwords["outpost"], subscribe=["#"]) as watcher, \
            Peer(port, "gh-1", passwords["gh-1"]) as device:
        assert device.connected, device.refused
        forged = ["devices/fan-1/set", "devices/gh-1/set", "devices/gh-2/status",
                  "devices/gh-2/ack", "sensors/gh-2/temperature", "sensors/gh-2",
                  "outpost/alerts/hot/gh-2", "outpost/status", "outpost/deadletter",
                  "zigbee2mqtt/fan-1/set", "$SYS/broker/forged"]
        allowed = ["sensors/gh-1", "sensors/gh-1/humidity", "devices/gh-1/status",
                   "devices/gh-1/ack"]
        _attempts(device, forged + allowed, "sensors/gh-1/temperature")
        assert pump_all([watcher, device], lambda: any(
            t == "sensors/gh-1/temperature" for t, _ in watcher.messages))
        received = [t for t, _ in watcher.messages]
        assert received == [*allowed, "sensors/gh-1/temperature"]


def test_a_device_reads_only_its_own_command_topic(
        secure_broker: Mosquitto, passwords: dict[str, str]) -> None:
    port = secure_broker.port
    with Peer(port, "gh-1", passwords["gh-1"],
              subscribe=["#", "devices/+/set", "devices/fan-1/set", "sensors/#",
                         "devices/gh-1/set"]) as device, \
            Peer(port, "outpost", passwords["outpost"]) as gateway:
        gateway.publish("devices/fan-1/set", b'{"id": "1", "speed": 100}')
        gateway.publish("sensors/gh-2/temperature", b"21")
        gateway.publish("outpost/alerts/hot/gh-2", b"{}")
        gateway.publish("devices/gh-1/set", b'{"id": "2", "on": true}')
        assert pump_all([device, gateway], lambda: bool(device.messages))
        pump_all([device, gateway], lambda: False, timeout=0.2)  # duplicates, if any, land
        assert {t for t, _ in device.messages} == {"devices/gh-1/set"}


def test_only_the_gateway_commands_devices_and_speaks_as_outpost(
        secure_broker: Mosquitto, passwords: dict[str, str]) -> None:
    port = secure_broker.port
    with Peer(port, "fan-1", passwords["fan-1"], subscribe=["devices/fan-1/set"]) as fan, \
            Peer(port, "outpost", passwords["outpost"], subscribe=["outpost/#"]) as watcher, \
            Peer(port, "simulator", passwords["simulator"]) as simulator, \
            Peer(port, "gh-2", passwords["gh-2"]) as other_device:
        for peer in (simulator, other_device):
            _attempts(peer, ["devices/fan-1/set", "outpost/alerts/x/fan-1", "outpost/status"],
                      f"devices/{'gh-2' if peer is other_device else 'sim-1'}/status")
        # The simulator speaks for many devices, but only as a device does.
        simulator.publish("sensors/gh-7/temperature", b"20")
        simulator.publish("devices/fan-1/ack", b'{"id": "1", "ok": true}')
        watcher.publish("devices/fan-1/set", b'{"id": "3", "speed": 10}')  # the gateway may
        watcher.publish("outpost/status", b"online")
        assert pump_all([fan, watcher, simulator, other_device],
                        lambda: fan.messages and watcher.messages)
        pump_all([fan, watcher], lambda: False, timeout=0.2)
        assert fan.messages == [("devices/fan-1/set", b'{"id": "3", "speed": 10}')]
        assert watcher.messages == [("outpost/status", b"online")]


def test_compose_gives_each_login_its_password_from_one_variable() -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not installed (apt-get install docker-compose)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    env |= {"MQTT_GATEWAY_PASSWORD": "gw-from-env", "MQTT_SIMULATOR_PASSWORD": "sim-from-env",
            "INFLUX_TOKEN": "t", "INFLUX_PASSWORD": "p", "GRAFANA_PASSWORD": "g",
            "OUTPOST_API_TOKEN": "a"}
    result = subprocess.run([exe, "-f", str(REPO / "docker-compose.yml"), "config"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    broker = services["mosquitto"]["environment"]
    assert broker["MQTT_GATEWAY_PASSWORD"] == services["gateway"]["environment"][
        "MQTT_PASSWORD"] == "gw-from-env"
    assert broker["MQTT_SIMULATOR_PASSWORD"] == services["simulator"]["environment"][
        "MQTT_PASSWORD"] == "sim-from-env"
    start = (REPO / "deploy/compose/mosquitto-start.sh").read_text()
    assert 'add_login outpost "$MQTT_GATEWAY_PASSWORD"' in start
    assert 'add_login simulator "$MQTT_SIMULATOR_PASSWORD"' in start
    assert subprocess.run(["sh", "-n", str(REPO / "deploy/compose/mosquitto-start.sh")],
                          check=False).returncode == 0
