"""Levels are read from the component that owns them when Prometheus scrapes."""

from __future__ import annotations

import time
import urllib.request

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Family, Metrics
from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config

FAMILIES = (
    Family("outpost_test_queue", "Items waiting"),
    Family("outpost_test_port_open", "1 while a port is open", ("port",)),
    Family("outpost_test_events", "Events, by kind", ("kind",), "counter"),
)


def _scrape(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_values_come_from_the_component_at_each_scrape() -> None:
    metrics = Metrics()
    state = {"queue": 3, "events": 5}

    def samples():
        yield "outpost_test_queue", (), state["queue"]
        yield "outpost_test_port_open", ("/dev/ttyUSB0",), 1.0
        yield "outpost_test_events", ("lines",), state["events"]

    metrics.read_at_scrape(FAMILIES, samples)
    text = _scrape(metrics)
    assert "outpost_test_queue 3.0" in text
    assert 'outpost_test_port_open{port="/dev/ttyUSB0"} 1.0' in text
    assert 'outpost_test_events_total{kind="lines"} 5.0' in text
    assert "# TYPE outpost_test_events_total counter" in text
    state.update(queue=0, events=9)
    text = _scrape(metrics)
    assert "outpost_test_queue 0.0" in text
    assert 'outpost_test_events_total{kind="lines"} 9.0' in text


def test_a_family_without_samples_is_still_described() -> None:
    metrics = Metrics()
    metrics.read_at_scrape(FAMILIES, lambda: ())
    text = _scrape(metrics)
    assert "# HELP outpost_test_queue Items waiting" in text
    assert "# TYPE outpost_test_port_open gauge" in text


def test_a_component_that_stops_can_take_its_families_away() -> None:
    metrics = Metrics()
    collector = metrics.read_at_scrape(FAMILIES, lambda: [("outpost_test_queue", (), 1)])
    metrics.registry.unregister(collector)
    assert "outpost_test_queue" not in _scrape(metrics)


def _levels(listen: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    names = ("outpost_mqtt_unacked_messages", "outpost_influx_up",
             "outpost_influx_buffered_readings", "outpost_mqtt_connected")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in names
    }


def _wait_levels(listen: str, want: dict[str, float], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        seen = _levels(listen)
        if all(seen.get(name) == value for name, value in want.items()):
            return
        time.sleep(0.1)
    raise AssertionError(f"wanted {want}, /metrics shows {seen}")


def test_a_running_gateway_reports_its_levels_as_they_are(
    tmp_path, mosquitto, influx_db, fault_proxy
) -> None:
    # InfluxDB refuses writes and there is no outbox: QoS 1 messages wait unacknowledged.
    fault_proxy.set_fault(status=503, count=None)
    config = gateway_config(mosquitto.port, fault_proxy.url, influx_db, outbox={"enabled": False})
    listen = config["http"]["listen"]
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)) as gateway,
        Device(mosquitto.port) as device,
    ):
        for i in range(20):
            device.publish("sensors/gh-1/seq", str(i), qos=1)
        gateway.wait_log("InfluxDB write failed")
        _wait_levels(listen, {"outpost_mqtt_connected": 1.0, "outpost_influx_up": 0.0,
                              "outpost_mqtt_unacked_messages": 20.0,
                              "outpost_influx_buffered_readings": 20.0})
        fault_proxy.clear()
        _wait_levels(listen, {"outpost_influx_up": 1.0, "outpost_mqtt_unacked_messages": 0.0,
                              "outpost_influx_buffered_readings": 0.0})
