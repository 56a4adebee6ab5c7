"""The closed-loop greenhouse through a real Mosquitto: commands, acks, physics and faults.

The simulator runs as its own process (``python -m simulators``), as in ``make demo``;
the test talks to it over MQTT only, like the gateway does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.services import Mosquitto
from tests.simulators.conftest import Received, Subscriber, statuses

REPO = Path(__file__).resolve().parents[2]
Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def simulator(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Start]:
    """``simulator("--scenario", "greenhouse", …)`` → the simulator process, killed after."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "simulators", "--host", "127.0.0.1"]
        cmd += ["--port", str(mosquitto.port), "--seed", "1", *args]
        log = open(tmp_path / f"simulator-{len(procs)}.log", "wb")  # noqa: SIM115
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def command(mosquitto: Mosquitto) -> Iterator[Callable[[str, dict[str, object]], None]]:
    """``command("fan-1", {"id": "c-1", "speed": 100})`` publishes on devices/fan-1/set."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-commander")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()

    def send(device: str, body: dict[str, object]) -> None:
        info = client.publish(f"devices/{device}/set", json.dumps(body), qos=1)
        info.wait_for_publish(5)

    yield send
    client.disconnect()
    client.loop_stop()


def readings(messages: list[Received], device: str, metric: str) -> list[tuple[float, float]]:
    """``(arrival, value)`` of ``metric`` in ``device``'s JSON samples."""
    out = []
    for m in messages:
        if m.topic == f"sensors/{device}":
            body = json.loads(m.payload)
            if metric in body:
                out.append((m.at, body[metric]))
    return out


def acks(messages: list[Received], device: str) -> list[dict[str, object]]:
    return [json.loads(m.payload) for m in messages if m.topic == f"devices/{device}/ack"]


def wait_for_log(broker: Mosquitto, *lines: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not all(line in broker.log_path.read_text() for line in lines):
        if time.monotonic() > deadline:
            raise AssertionError(f"not in the broker log: {lines}\n{broker.log_tail()}")
        time.sleep(0.05)


def write_scenario(tmp_path: Path, faults: str) -> str:
    path = tmp_path / "gh-test.yaml"
    path.write_text(
        "name: gh-test\n"
        "devices: [{id: gh-1}, {id: gh-2}]\n"
        "physics: {start_hour: 12, initial: {temperature: 29}}\n"
        "actuators: [{id: fan-1, kind: fan}, {id: heater-1, kind: heater}]\n"
        f"faults:\n{faults}"
    )
    return str(path)


def test_a_fan_command_is_acked_with_its_id_and_the_temperature_falls(
    simulator: Start, subscribe: Callable[..., Subscriber], command: Callable[..., None]
) -> None:
    sub = subscribe(["sensors/#", "devices/+/ack"])
    # 100× speed: one wall second is 100 simulated seconds.
    simulator("--scenario", "greenhouse", "--speed", "100", "--rate", "5")
    sub.wait_for(lambda ms: len(readings(ms, "gh-1", "temperature")) >= 3)
    command("fan-1", {"id": "cmd-1", "speed": 100})
    sub.wait_for(lambda ms: acks(ms, "fan-1") == [{"id": "cmd-1", "ok": True}], 5)
    acked_at = next(m.at for m in sub.snapshot() if m.topic == "devices/fan-1/ack")
    # The fan reports its new state at once, then in every sample.
    sub.wait_for(lambda ms: (acked_at, 100) <= max(readings(ms, "fan-1", "speed")), 5)
    # 3 s of wall time = 300 simulated seconds at full fan: ~30 °C → ~26 °C.
    sub.wait_for(lambda ms: readings(ms, "gh-1", "temperature")[-1][0] > acked_at + 3, 10)
    after = [v for at, v in readings(sub.snapshot(), "gh-1", "temperature") if at > acked_at]
    assert after[-1] < after[0] - 2, after
    assert after[-1] < 28

    command("fan-1", {"id": "cmd-2", "speed": 140})
    sub.wait_for(lambda ms: len(acks(ms, "fan-1")) == 2, 5)
    refusal = acks(sub.snapshot(), "fan-1")[1]
    assert refusal["id"] == "cmd-2" and refusal["ok"] is False
    assert "outside 0..100" in str(refusal["error"])


def test_an_actuator_that_ignores_commands_never_acks_nor_acts(
    simulator: Start,
    subscribe: Callable[..., Subscriber],
    command: Callable[..., None],
    tmp_path: Path,
) -> None:
    scenario = write_scenario(tmp_path, "  - {device: fan-1, kind: ignore_commands, start: 0s}\n")
    sub = subscribe(["sensors/fan-1", "devices/+/ack", "devices/+/status"])
    simulator("--scenario", scenario, "--speed", "10", "--rate", "10")
    sub.wait_for(lambda ms: statuses(ms).get("fan-1") == b"online")
    sub.wait_for(lambda ms: len(readings(ms, "fan-1", "speed")) >= 1)
    command("fan-1", {"id": "deaf-1", "speed": 100})
    command("heater-1", {"id": "heat-1", "power": "on"})  # its neighbour still answers
    sub.wait_for(lambda ms: acks(ms, "heater-1") == [{"id": "heat-1", "ok": True}], 5)
    time.sleep(1.0)  # ten fan samples later
    msgs = sub.snapshot()
    assert acks(msgs, "fan-1") == []
    speeds = readings(msgs, "fan-1", "speed")
    assert len(speeds) >= 10 and {v for _, v in speeds} == {0}


def test_an_offline_fault_fires_the_will_then_the_device_comes_back(
    simulator: Start,
    subscribe: Callable[..., Subscriber],
    mosquitto: Mosquitto,
    tmp_path: Path,
) -> None:
    # Simulated 10..30 s at 10× speed: offline from 1 s to 3 s of wall time.
    scenario = write_scenario(
        tmp_path,
        "  - {device: gh-1, kind: offline, start: 10s, end: 30s}\n"
        "  - {device: gh-2, kind: offline, start: 10s, end: 30s, mode: clean}\n",
    )
    sub = subscribe(["devices/gh-1/status", "devices/gh-2/status", "sensors/gh-1"])
    simulator("--scenario", scenario, "--speed", "10", "--rate", "10")
    down = {"gh-1": b"offline", "gh-2": b"offline"}
    sub.wait_for(lambda ms: statuses(ms) == down, 5)
    # While down, the broker keeps `offline` retained for anyone who asks.
    late = Subscriber(mosquitto.port, ["devices/gh-1/status", "devices/gh-2/status"])
    try:
        late.wait_for(lambda ms: statuses(ms) == down, 5)
        assert all(m.retain for m in late.snapshot())
    finally:
        late.close()
    # gh-1 lost its connection (the broker published its will); gh-2 said goodbye
    # (its DISCONNECT may be logged just after its `offline` was delivered).
    wait_for_log(mosquitto, "Client gh-1 closed its connection", "Client gh-2 disconnected")
    went_down = max(m.at for m in sub.snapshot() if m.payload == b"offline")
    sub.wait_for(lambda ms: statuses(ms) == {"gh-1": b"online", "gh-2": b"online"}, 5)
    msgs = sub.snapshot()
    back = min(m.at for m in msgs if m.payload == b"online" and m.at > went_down)
    assert 1.0 < back - went_down < 4.0
    # No readings while offline (a small margin for samples in flight).
    silent = [at for at, _ in readings(msgs, "gh-1", "temperature") if went_down + 0.2 < at < back]
    assert silent == []
    sub.wait_for(lambda ms: readings(ms, "gh-1", "temperature")[-1][0] > back, 5)
