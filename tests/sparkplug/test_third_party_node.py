"""The same scenarios with a third-party edge node: mqtt-spb-wrapper 2.1.2.

The library pins paho-mqtt 1.6.1 and protobuf 3.20.3, so it runs in a virtualenv of
its own (created under the user's cache directory on first use, or named by
``OUTPOST_SPB_VENV``) as a subprocess (``wrapper_node.py``). It misbehaves in ways
real edge nodes do, and Outpost must stay correct and say what it saw:

- its births name metrics ``DATA/x``, ``CMD/x``, ``ATTR/x`` and its data and commands
  say ``x``;
- the NBIRTH's ``bdSeq`` is not the one of the will's NDEATH;
- a device has a connection of its own, whose will is a DDEATH without a sequence
  number or timestamp;
- one sequence counter serves every entity of the process;
- its rebirth handler raises in the node's network thread, which then dies.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.devices.conftest import Subscriber
from tests.sparkplug.conftest import until

WRAPPER = "mqtt-spb-wrapper==2.1.2"
DEVICE = "plant2:wrap-1:wrap-dev"
NODE = "plant2:wrap-1"
SCRIPT = Path(__file__).with_name("wrapper_node.py")

RULES = """\
rules:
  - name: wrapper_silent
    match: {metric: "DATA/temperature"}
    when: absent(2s)
    severity: critical
"""


@pytest.fixture(scope="session")
def wrapper_python() -> Path:
    """The python of a virtualenv holding mqtt-spb-wrapper 2.1.2, made when missing."""
    default = Path.home() / ".cache" / "outpost-test" / "venv-mqtt-spb-wrapper-2.1.2"
    venv = Path(os.environ.get("OUTPOST_SPB_VENV", default))
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import mqtt_spb_wrapper"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", WRAPPER],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        output = getattr(exc, "stderr", b"") or b""
        pytest.skip(
            f"cannot make a virtualenv with {WRAPPER} in {venv}: {exc} "
            f"{output.decode(errors='replace')[-300:]}"
        )
    return python


class WrapperNode:
    """The driver script as a subprocess: commands in, events out."""

    def __init__(self, python: Path, port: int) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.events: queue.Queue[str] = queue.Queue()
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.send(f"start 127.0.0.1 {port}")
        self.expect("ready")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            self.events.put(line.rstrip())

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {word!r} from the node; it said {self.lines}") from None
            if line.split(" ", 1)[0] == word:
                return line

    def data(self, values: dict) -> None:
        self.send("data " + json.dumps(values))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def close(self) -> None:
        if self.proc.poll() is None and not self.proc.stdin.closed:
            self.send("quit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def wrapper_gateway(spb_gateway):
    def start():
        device = {
            "convention": "sparkplug",
            "ack_timeout": "3s",
            "retries": 0,
            "commands": {"CMD/pump": {"type": "bool"}},
        }
        return spb_gateway(rules=RULES, devices={DEVICE: device})

    return start


def test_its_births_data_and_commands_are_read_through_its_naming(
    wrapper_python, wrapper_gateway, mosquitto, influxdb, influx_db
):
    gateway = wrapper_gateway()
    node = WrapperNode(wrapper_python, mosquitto.port)
    try:
        until(lambda: (gateway.device(DEVICE) or {}).get("online"), what="the DBIRTH")
        for value in (21.0, 21.5):
            node.data({"temperature": value})
            time.sleep(0.1)
        rows = influxdb.wait_for_count(influx_db, 3, measurement="DATA/temperature")
        status, answer = gateway.command(DEVICE, {"CMD/pump": True})
        assert status == 202, answer
        command = json.loads(node.expect("command").split(" ", 1)[1])
        until(lambda: _outcomes(gateway).get("acked"), what="the acknowledgement")
    finally:
        node.close()
    assert [r["fields"]["value"] for r in rows] == [20.5, 21, 21.5]
    assert rows[0]["tags"]["device"] == DEVICE
    assert [(m["name"], m["value"]) for m in command] == [("pump", True)]  # the name it knows
    log = gateway.process.log()
    assert log.count("births name metrics DATA/x") == 1  # logged once per edge node
    assert gateway.metric('outpost_sparkplug_anomalies_total{kind="bare_names"}') >= 2


def test_its_rebirth_handler_crashes_and_outpost_keeps_refusing_and_reports_it(
    wrapper_python, wrapper_gateway, mosquitto, influxdb, influx_db
):
    gateway = wrapper_gateway()
    requests = Subscriber(mosquitto.port, "spBv1.0/plant2/NCMD/#")
    node = WrapperNode(wrapper_python, mosquitto.port)
    try:
        until(lambda: (gateway.device(DEVICE) or {}).get("online"), what="the DBIRTH")
        node.send("gap 5")
        node.data({"temperature": 80.0})
        until(lambda: requests.on("spBv1.0/plant2/NCMD/wrap-1"), what="a rebirth request")
        crash = node.expect("crash")
        for value in (81.0, 82.0, 83.0):  # its device's connection still sends
            time.sleep(0.8)
            node.data({"temperature": value})
        unanswered = 'outpost_sparkplug_anomalies_total{kind="rebirth_unanswered"}'
        until(lambda: gateway.metric(unanswered), what="the unanswered rebirth")
        stored = [r["fields"]["value"] for r in influxdb.points(influx_db, "DATA/temperature")]
        assert gateway.get("/api/v1/status")  # alive and answering
    finally:
        node.close()
        requests.close()
    assert "TypeError" in crash  # the library calls the False it kept as a callback
    assert stored == [20.5]  # only the birth: nothing after the gap was guessed
    assert gateway.metric('outpost_deadletters_total{reason="sequence_gap"}') == 1
    assert gateway.metric('outpost_deadletters_total{reason="awaiting_rebirth"}') >= 2
    assert "did not answer a rebirth request" in gateway.process.log()
    assert gateway.process.proc is not None and gateway.process.proc.poll() is None


def test_its_death_with_a_mismatched_bdseq_and_a_seqless_ddeath_still_means_offline(
    wrapper_python, wrapper_gateway, mosquitto
):
    gateway = wrapper_gateway()
    alerts = Subscriber(mosquitto.port, "outpost/alerts/#")
    node = WrapperNode(wrapper_python, mosquitto.port)
    try:
        until(lambda: (gateway.device(DEVICE) or {}).get("online"), what="the DBIRTH")
        node.data({"temperature": 22.0})
        node.kill()  # both connections drop: the broker sends the NDEATH and the DDEATH wills
        until(
            lambda: _offline(gateway, DEVICE) and _offline(gateway, NODE),
            timeout=15,
            what="both offline",
        )
        until(
            lambda: [
                m
                for m in alerts.on(f"outpost/alerts/wrapper_silent/{DEVICE}")
                if json.loads(m.payload)["state"] == "firing"
            ],
            timeout=15,
            what="the absent() alert",
        )
    finally:
        alerts.close()
        node.close()
    log = gateway.process.log()
    assert "its NDEATH says bdSeq" in log and "its DDEATH carries no sequence number" in log
    assert gateway.metric('outpost_sparkplug_anomalies_total{kind="bdseq_mismatch"}') == 1
    assert gateway.metric('outpost_sparkplug_anomalies_total{kind="ddeath_without_seq"}') == 1


def _offline(gateway, device):
    entry = gateway.device(device)
    return entry is not None and entry["online"] is False


def _outcomes(gateway):
    out: dict[str, list] = {}
    for c in gateway.get("/api/v1/commands?limit=10")["recent"]:
        out.setdefault(c["outcome"], []).append(c)
    return out
